"""The weight average that is evaluated: its formula, its ramp, and its checkpoint."""

import torch

from mnist_lib.model import Net
from mnist_lib.train import Ema


def changed(model: Net, by: float) -> Net:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(by)
        model.conv_block1[0][1].running_mean.add_(by)
        model.conv_block1[0][1].num_batches_tracked.add_(1)
    return model


def test_first_update_copies_then_the_decay_ramps_up():
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    ema = Ema(model, decay=0.999)
    changed(model, 1.0)
    ema.update()  # first update: a copy
    for a, m in zip(ema.module.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, m)
    before = ema.module.dense.weight.clone()
    changed(model, 1.0)
    ema.update()  # second update: d = (1 + 1) / (10 + 1)
    d = 2 / 11
    torch.testing.assert_close(
        ema.module.dense.weight, before + (1 - d) * (model.dense.weight - before)
    )
    assert ema.module.conv_block1[0][1].num_batches_tracked.item() == 2  # counters are copied
    assert ema.updates == 2


def test_decay_is_capped():
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    ema = Ema(model, decay=0.5)
    ema.updates = 1000  # the ramp (1 + n) / (10 + n) is near 1 here: the cap 0.5 applies
    before = ema.module.dense.bias.clone()
    changed(model, 1.0)
    ema.update()
    torch.testing.assert_close(ema.module.dense.bias, (before + model.dense.bias) / 2)


def test_a_shorter_warmup_reaches_the_cap_sooner():
    model = Net(dropout=0.0)
    default, short = Ema(model, decay=0.999), Ema(model, decay=0.999, warmup=2)
    for n, weight in ((1, 1 - 2 / 11), (500, 1 - 501 / 510), (9_000, 0.001)):
        default.updates = n
        assert abs(default.next_weight() - weight) < 1e-12
    for n, weight in ((1, 1 - 2 / 3), (500, 1 - 501 / 502), (998, 0.001), (9_000, 0.001)):
        short.updates = n
        assert abs(short.next_weight() - weight) < 1e-12


def test_state_dict_round_trip():
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    ema = Ema(model, decay=0.9)
    changed(model, 0.5)
    ema.update()
    changed(model, 0.5)
    ema.update()
    other = Ema(Net(dropout=0.0), decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 2
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(other.module.eval()(x), ema.module.eval()(x))
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_training_the_model_leaves_the_average_alone_until_it_is_updated():
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    ema = Ema(model, decay=0.999)
    ema.update()
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    changed(model, 1.0)
    assert all(torch.equal(v, before[k]) for k, v in ema.module.state_dict().items())
