"""The layer table: its receptive fields against an independent measurement (which input pixels
one output value's gradient reaches), and its parameter and shape columns."""

import copy

import pytest
import torch
from torch import nn

from mnist_lib.lab.experiments.variants import register
from mnist_lib.layers import format_layer_table, layer_stats, layer_table
from mnist_lib.model import Net, TinyNet, build_model, count_params

register()  # design-e and design-g: more layouts (a second max-pool) to measure


def measured_rf(model: nn.Module, layer: str) -> int:
    """The width of the input patch that one output value of ``layer`` depends on, measured.

    Every weight is made positive and every max-pool an average-pool of the same window (the
    same receptive field, but a gradient that reaches every pixel of the window), so no path
    cancels; the gradient of the centre output value then reaches exactly the receptive field."""
    probe = copy.deepcopy(model).eval()
    for module in probe.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride))
    with torch.no_grad():
        for p in probe.parameters():
            p.fill_(0.1)
    outputs = {}

    def stop(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        outputs["o"] = output
        raise StopIteration  # the layers after this one need not (and for Net cannot) run

    dict(probe.named_modules())[layer].register_forward_hook(stop)
    x = torch.ones(1, 1, 84, 84, requires_grad=True)  # wide, so no border clips the field
    with pytest.raises(StopIteration):
        probe(x)
    out = outputs["o"]  # (1, C, H, W)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    reached = (x.grad[0, 0] != 0).nonzero()
    return int(reached[:, 1].max() - reached[:, 1].min() + 1)


def conv_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["net", "tiny", "design-e", "design-g"])
def test_receptive_field_matches_the_measured_one(name):
    model = build_model(name, dropout=0.0)
    rows = {r["name"]: r for r in layer_table(model)}
    for layer in conv_layers(model):
        assert rows[layer]["rf"] == measured_rf(model, layer), layer


def test_net_table_by_hand():
    rows = layer_table(Net(dropout=0.0))
    convs = [r for r in rows if r["type"] == "Conv2d"]
    assert [r["output"] for r in convs] == [
        (8, 28, 28),
        (24, 28, 28),
        (8, 14, 14),
        (16, 12, 12),
        (24, 10, 10),
        (8, 10, 10),
        (16, 8, 8),
        (32, 6, 6),
    ]
    assert [r["params"] for r in convs] == [72, 1728, 192, 1152, 3456, 192, 1152, 4608]
    assert [r["rf"] for r in convs] == [3, 5, 6, 10, 14, 14, 18, 22]
    assert sum(r["params"] for r in rows) == count_params(Net()) == 13_154
    stats = layer_stats(rows)
    assert (stats["convs"], stats["1x1 convs"], stats["pools"], stats["widest"]) == (8, 2, 2, 32)


def test_format_leaves_out_what_it_is_told_and_counts_everything():
    rows = layer_table(TinyNet())
    text = format_layer_table(rows, skip=("ReLU",))
    assert "ReLU" not in text.split("not shown")[0] and "total params (all layers): 7,570" in text
