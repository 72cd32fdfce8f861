"""Sharded steps: one SGD step on the whole batch, whether the shards run in turn or in parallel."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_lib import Net, normalize
from mnist_lib.speed.shards import ShardedStep, worker_threads

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def batch(mnist):
    """The first 64 training images (normalised) and their labels."""
    return normalize(mnist.train_images[:64]), mnist.train_labels[:64]


def grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def linear_model() -> nn.Module:
    """No BatchNorm: a sharded gradient must equal the whole batch's."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.LogSoftmax(dim=1))


@pytest.mark.parametrize("shards, size", [(2, 64), (3, 64), (2, 5)])
def test_shards_add_up_to_the_whole_batch_gradient(batch, shards, size):
    x, y = batch[0][:size], batch[1][:size]
    whole = linear_model()
    loss = F.nll_loss(whole(x), y)
    loss.backward()
    model = linear_model()
    with ShardedStep(model, shards, amp=None) as step:
        sharded_loss, correct = step(x, y)
    assert sharded_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    assert correct.item() == (whole(x).argmax(1) == y).sum().item()
    for a, b in zip(grads(model), grads(whole), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_each_shard_is_its_own_batchnorm_batch(batch):
    """With BatchNorm, two shards give the mean of the halves' gradients, each computed alone."""
    x, y = batch
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    halves = [copy.deepcopy(model) for _ in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each shard's worker runs: the same order of float sums
    try:
        for half, xs, ys in zip(halves, x.chunk(2), y.chunk(2), strict=True):
            F.nll_loss(half(xs), ys).backward()
    finally:
        torch.set_num_threads(threads)
    with ShardedStep(model, 2, amp=None) as step:
        step(x, y)
    for got, a, b in zip(grads(model), grads(halves[0]), grads(halves[1]), strict=True):
        torch.testing.assert_close(got, (a + b) / 2, rtol=1e-5, atol=1e-6)
    # The running statistics come from the first shard only, as with DistributedDataParallel.
    assert torch.equal(
        model.conv_block1[0][1].running_mean, halves[0].conv_block1[0][1].running_mean
    )


@pytest.mark.parametrize("shards", [2, 4])
def test_parallel_shards_compute_what_shards_in_turn_compute(batch, shards):
    x, y = batch
    results = {}
    for threads in (1, 2):  # 1 thread: shards in turn; 2 threads: in parallel, 1 thread each
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            model = Net(dropout=0.0).to(memory_format=torch.channels_last)
            with ShardedStep(model, shards, amp=torch.bfloat16) as step:
                assert step.workers == threads
                if threads == 2:
                    assert torch.get_num_threads() == 1  # each shard's share while the step is open
                loss, _ = step(x, y)
            assert torch.get_num_threads() == threads  # given back
            results[threads] = (loss, grads(model))
        finally:
            torch.set_num_threads(saved)
    assert torch.equal(results[1][0], results[2][0])
    for a, b in zip(results[1][1], results[2][1], strict=True):
        assert torch.equal(a, b)


def test_replicas_follow_the_optimizer(batch):
    x, y = batch
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ShardedStep(model, 2, amp=None) as step:
        step(x, y)
        optimizer.step()
        step(x, y)
        for replica in step.replicas[1:]:
            for a, b in zip(replica.parameters(), model.parameters(), strict=True):
                assert torch.equal(a, b)


def test_worker_threads():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert worker_threads(CPU, 4) == 2  # one per thread, two shards each
        assert worker_threads(CPU, 1) == 1  # one shard: nothing to run in parallel
        assert worker_threads(torch.device("cuda"), 4) == 1  # a GPU runs them in turn
        torch.set_num_threads(1)
        assert worker_threads(CPU, 4) == 1
    finally:
        torch.set_num_threads(saved)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_compute_what_eager_passes_compute(batch, monkeypatch):
    """On a GPU the replicas replay CUDA graphs: the same gradients and BatchNorm statistics as
    eager passes (fp32 convolutions, not TF32, whose rounding would swamp the comparison)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cuda = torch.device("cuda")
    x, y = batch[0].to(cuda), batch[1].to(cuda)
    torch.manual_seed(0)
    model = Net(dropout=0.0).to(cuda)
    eager = [copy.deepcopy(model) for _ in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ShardedStep(model, 2, amp=None) as step:
        for _ in range(2):  # the second step replays the graphs recorded in the first
            for half in eager:
                half.load_state_dict(model.state_dict())
                half.zero_grad(set_to_none=True)
            for half, xs, ys in zip(eager, x.chunk(2), y.chunk(2), strict=True):
                (F.nll_loss(half(xs), ys) / 2).backward()
            step(x, y)
            assert step.graphed
            for got, a, b in zip(grads(model), grads(eager[0]), grads(eager[1]), strict=True):
                torch.testing.assert_close(got, a + b, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(
                model.conv_block1[0][1].running_var, eager[0].conv_block1[0][1].running_var
            )
            optimizer.step()


def test_outside_a_with_block_every_shard_still_runs(batch):
    x, y = batch[0][:64], batch[1][:64]
    whole = linear_model()
    F.nll_loss(whole(x), y).backward()
    model = linear_model()
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ShardedStep(model, 2, amp=None)(x, y)  # no worker thread started: the shards run in turn
    finally:
        torch.set_num_threads(saved)
    for a, b in zip(grads(model), grads(whole), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_shards_use_the_smoothed_loss_too(batch):
    x, y = batch
    whole = linear_model()
    F.cross_entropy(whole(x), y, label_smoothing=0.1).backward()
    model = linear_model()
    with ShardedStep(model, 2, amp=None, smoothing=0.1) as step:
        step(x, y)
    for a, b in zip(grads(model), grads(whole), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
