"""The lab's fast paths compute the course loop's numbers: the ghost batches on parallel threads
(`ShardedStep`), several seeds in one step (`StackedTrainer`) and, on a GPU, that step as a CUDA
graph (`GraphedTrainer`). In float64, where rounding cannot grow, they agree to 1e-9."""

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from helpers import silent
from torch import nn

from mnist_lib.augment import random_thetas
from mnist_lib.config import TrainConfig, UserError, recipe
from mnist_lib.data import DeviceData, normalize
from mnist_lib.device import autocast
from mnist_lib.fit import Run, fit
from mnist_lib.lab.experiments.variants import register
from mnist_lib.lab.speed.graphed import GraphedTrainer, autocast_cache_off
from mnist_lib.lab.speed.shards import ShardedStep, worker_threads
from mnist_lib.lab.speed.stacked import StackedTrainer
from mnist_lib.lab.speed.together import fit_fast, fit_together
from mnist_lib.model import MODELS, Net
from mnist_lib.train import evaluate, forward_backward, train_one_epoch

register()
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def batch(mnist):
    """The first 64 training images (normalised) and their labels."""
    return normalize(mnist.train_images[:64]), mnist.train_labels[:64]


def grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def in_float64(data: DeviceData) -> DeviceData:
    return DeviceData(
        data.train_x.double(), data.train_y, data.eval_x.double(), data.eval_y, data.split
    )


def state(run: Run) -> list[torch.Tensor]:
    """Everything an epoch changes: weights, statistics, averages, momenta."""
    tensors = [*run.model.state_dict().values(), *run.ema.module.state_dict().values()]
    return tensors + [run.optimizer.state[p]["momentum_buffer"] for p in run.model.parameters()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], rel: float) -> None:
    for x, y in zip(a, b, strict=True):
        if x.is_floating_point():
            assert (x - y).norm() <= rel * x.norm(), (x - y).norm()
        else:
            assert torch.equal(x, y)  # BatchNorm's batch counters


@pytest.mark.parametrize("shards, size", [(2, 64), (3, 64), (2, 5)])
def test_ghost_batches_add_up_to_the_whole_batch_gradient(batch, shards, size):
    """Without BatchNorm the ghost batches change nothing: the gradient is the whole batch's."""
    x, y = batch[0][:size], batch[1][:size]
    torch.manual_seed(0)
    whole = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.LogSoftmax(dim=1))
    F.nll_loss(whole(x), y).backward()
    cfg = TrainConfig(shards=shards, batch_size=size)
    for step in (forward_backward, ShardedStep()):
        model = copy.deepcopy(whole)
        model.zero_grad(set_to_none=True)
        loss, correct = step(model, x, y, cfg, None)
        assert loss.item() == pytest.approx(F.nll_loss(whole(x), y).item(), rel=1e-6)
        assert correct.item() == (whole(x).argmax(1) == y).sum().item()
        for a, b in zip(grads(model), grads(whole), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_each_ghost_batch_is_its_own_batchnorm_batch_and_updates_the_statistics_in_turn(batch):
    x, y = batch
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    halves = copy.deepcopy(model)
    for xs, ys in zip(x.chunk(2), y.chunk(2), strict=True):  # one after the other, by hand
        (F.nll_loss(halves(xs), ys) / 2).backward()
    forward_backward(model, x, y, TrainConfig(batch_size=64, shards=2), None)
    for a, b in zip(grads(model), grads(halves), strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(model.buffers(), halves.buffers(), strict=True):
        torch.testing.assert_close(a, b)
    assert model.conv_block1[0][1].num_batches_tracked.item() == 2


@pytest.mark.parametrize("shards", [2, 4])
def test_threads_compute_what_one_thread_computes(batch, shards):
    x, y = batch
    results = {}
    for threads in (1, 2):  # 1: ghost batches in turn; 2: in parallel, one intra-op thread each
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            model = Net(dropout=0.0).to(memory_format=torch.channels_last)
            step = ShardedStep()
            loss, _ = step(model, x, y, TrainConfig(batch_size=64, shards=shards), torch.bfloat16)
            assert step.workers == threads and torch.get_num_threads() == threads  # given back
            results[threads] = (loss, grads(model), [b.clone() for b in model.buffers()])
        finally:
            torch.set_num_threads(saved)
    assert torch.equal(results[1][0], results[2][0])
    for a, b in zip(results[1][1] + results[1][2], results[2][1] + results[2][2], strict=True):
        assert torch.equal(a, b)


def test_worker_threads():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert (worker_threads(4), worker_threads(1)) == (2, 1)  # one per thread, at most
        torch.set_num_threads(1)
        assert worker_threads(4) == 1
    finally:
        torch.set_num_threads(saved)


def test_in_float64_an_epoch_is_the_loop_s_epoch_on_every_path(mnist):
    """One epoch of `net` (two ghost batches, weight decay, the weight average, a zoom whose
    draws come after each step's rotations and shifts) by the loop, by the loop with the
    threaded step, and by StackedTrainer: every weight, statistic, average and momentum agrees
    to 1e-9 of its size, and so does the test pass of the weight average."""
    cfg = recipe(
        "net",
        epochs=3,
        limit_train=512,
        limit_test=256,
        batch_size=128,
        precision="fp32",
        weight_decay=0.05,
        scale=0.1,
    )
    data = in_float64(DeviceData.from_mnist(mnist, CPU, 512, 256))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        runs = [Run.new(cfg, CPU, None) for _ in range(3)]
        stats = [
            train_one_epoch(
                r.model, data, r.optimizer, r.scheduler, cfg, r.generator, r.ema, None, step
            )
            for r, step in zip(runs[:2], (forward_backward, ShardedStep()), strict=True)
        ]
        trainer = StackedTrainer(runs[2:], data, cfg, None)
        stats += trainer.train_epoch()
        trainer.store()
        scores = [evaluate(r.eval_model, data.eval_x, data.eval_y) for r in runs[:2]]
        scores += trainer.evaluate()
    finally:
        torch.set_default_dtype(default)
    assert next(runs[2].model.parameters()).dtype == torch.float64
    for run, st, (loss, acc) in zip(runs[1:], stats[1:], scores[1:], strict=True):
        assert_same(state(runs[0]), state(run), rel=1e-9)
        assert st["train_loss"] == pytest.approx(stats[0]["train_loss"], rel=1e-12)
        assert (loss, acc) == (pytest.approx(scores[0][0], rel=1e-9), scores[0][1])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_run_s_first_step_is_its_network_s_on_its_ghost_batches(mnist, name):
    """Every model, course and lab, two seeds, three ghost batches of unequal size, together:
    the first step's loss of each run is its own network's, each ghost batch normalised by its
    own statistics, and each run's statistics end where the loop's would."""
    cfg = recipe(
        name,
        limit_train=200,
        limit_test=100,
        batch_size=100,
        shards=3,
        precision="fp32",
        rotate=0.0,
        shift=0.0,
        dropout=0.0,
    )
    data = DeviceData.from_mnist(mnist, CPU, 200, 100)
    runs = [Run.new(replace(cfg, seed=s), CPU, None) for s in (0, 1)]
    alone = [copy.deepcopy(r.model).train() for r in runs]
    trainer = StackedTrainer(runs, data, cfg, None)
    trainer.prepare_epoch()
    trainer.train_step()
    for run, model in enumerate(alone):
        idx = trainer.order[run, 0]
        losses = [
            F.nll_loss(model(data.train_x[i]), data.train_y[i], reduction="sum")
            for i in idx.tensor_split(3)
        ]
        expected = torch.stack(losses).sum() / 100
        assert trainer.loss_sum[run].item() / 100 == pytest.approx(expected.item(), rel=1e-5)
        for mine, its in zip(runs[run].model.buffers(), model.buffers(), strict=True):
            torch.testing.assert_close(mine, its, rtol=1e-5, atol=1e-6)
    assert trainer.loss_sum[0] != trainer.loss_sum[1]  # two different networks


def slow_micro(**overrides) -> TrainConfig:
    """MicroNet on 4,000 images at a low learning rate: two seeds learn (to 40-50 % on 1,000
    test images) without the first steps' chaos that makes any two roundings diverge."""
    base = {"epochs": 2, "limit_train": 4000, "limit_test": 1000, "lr": 0.02, "precision": "fp32"}
    return recipe("micro", **{**base, **overrides})


def together(cfgs: list[TrainConfig], dirs: list, mnist, device: str = "cpu", **options) -> list:
    return fit_together(cfgs, dirs, device=device, log=silent, data=mnist, **options)


def test_two_seeds_together_train_exactly_as_each_alone_in_the_trainer(tmp_path, mnist):
    """Nothing passes between runs trained together: each seed's history is, number for number,
    the one it gets trained by itself."""
    cfgs = [slow_micro(seed=s) for s in (0, 1)]
    both = together(cfgs, [tmp_path / f"together-{c.seed}" for c in cfgs], mnist)
    for cfg, history in zip(cfgs, both, strict=True):
        [alone] = together([cfg], [tmp_path / f"alone-{cfg.seed}"], mnist)
        assert history.seed == cfg.seed
        assert [(e.train_loss, e.test_loss, e.test_acc, e.lr) for e in history.epochs] == [
            (e.train_loss, e.test_loss, e.test_acc, e.lr) for e in alone.epochs
        ]
        assert history.epochs[-1].test_acc > 30  # they learned (chance: 10 %)
    assert both[0].epochs[-1].train_loss != both[1].epochs[-1].train_loss


def test_an_interrupted_run_together_resumes_to_the_same_numbers(tmp_path, mnist, monkeypatch):
    cfgs = [slow_micro(seed=s, limit_train=1024) for s in (0, 1)]
    whole = together(cfgs, [tmp_path / f"whole-{c.seed}" for c in cfgs], mnist)
    dirs = [tmp_path / f"stopped-{c.seed}" for c in cfgs]
    train_epoch, calls = StackedTrainer.train_epoch, []

    def stop_in_the_second_epoch(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_epoch(self)

    monkeypatch.setattr(StackedTrainer, "train_epoch", stop_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        together(cfgs, dirs, mnist)
    monkeypatch.undo()
    resumed = together(cfgs, dirs, mnist, resume=[True, True])
    for a, b in zip(whole, resumed, strict=True):
        assert [(e.train_loss, e.test_loss, e.test_acc) for e in a.epochs] == [
            (e.train_loss, e.test_loss, e.test_acc) for e in b.epochs
        ]


def test_a_seed_whose_loss_explodes_is_named(tmp_path, mnist):
    cfgs = [slow_micro(seed=s, epochs=1, limit_train=1024, lr=1e6) for s in (0, 1)]
    with pytest.raises(UserError, match=r"NaN/inf in epoch 1 \(seed 0\): the learning rate"):
        together(cfgs, [tmp_path / f"seed-{c.seed}" for c in cfgs], mnist)


def test_runs_together_must_differ_in_their_seed_only(tmp_path, mnist):
    cfgs = [slow_micro(seed=0), slow_micro(seed=1, lr=0.05)]
    with pytest.raises(ValueError, match="seed only"):
        together(cfgs, [tmp_path / "a", tmp_path / "b"], mnist)


def test_fit_fast_on_a_cpu_is_fit_with_threads(tmp_path, mnist):
    """In fp32 the threaded step's passes run on one intra-op thread each, the loop's on all:
    the same numbers up to the rounding of oneDNN's sums, and the same files."""
    cfg = recipe("net", epochs=1, limit_train=1024, limit_test=500, precision="fp32")
    fast = fit_fast(cfg, tmp_path / "fast", "cpu", log=silent, data=mnist)
    plain = fit(cfg, tmp_path / "plain", "cpu", log=silent, data=mnist)
    assert fast.epochs[0].train_loss == pytest.approx(plain.epochs[0].train_loss, rel=1e-3)
    assert sorted(p.name for p in (tmp_path / "fast").iterdir()) == sorted(
        p.name for p in (tmp_path / "plain").iterdir()
    )


def test_while_recording_only_the_passes_run_under_autocast():
    """The context a step is recorded in: augmentation outside the passes warps on an fp32 grid,
    as in the eager steps, and the passes' own bf16 autocast runs without its weight cache (which
    a CUDA graph must not keep across replays). Shown on the CPU, whose autocast works alike."""
    thetas = random_thetas(8, 7.0, 1.5, torch.Generator().manual_seed(0))
    with autocast_cache_off(CPU):
        assert F.affine_grid(thetas, [8, 1, 28, 28], align_corners=False).dtype == torch.float32
        with autocast(CPU, torch.bfloat16):
            assert torch.is_autocast_enabled("cpu")
            assert not torch.is_autocast_cache_enabled()
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert torch.is_autocast_cache_enabled()


def exact_gpu_sums(monkeypatch) -> None:
    """fp32 convolutions and matrix products in fp32 (not TF32), with deterministic algorithms:
    two ways of running the same numbers then round alike."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_recorded_step_replays_what_the_eager_step_computes(mnist, monkeypatch):
    """The same two seeds of two ghost batches each, eager on one stream, and recorded with every
    ghost batch on its own stream: the same numbers every epoch up to rounding."""
    exact_gpu_sums(monkeypatch)
    cuda = torch.device("cuda")
    cfg = recipe("net", epochs=3, limit_train=4096, limit_test=1000, lr=0.02, precision="fp32")
    data = DeviceData.from_mnist(mnist, cuda, 4096, 1000)
    results = []
    for kind in (StackedTrainer, GraphedTrainer):
        runs = [Run.new(replace(cfg, seed=s), cuda, None) for s in (0, 1)]
        trainer = kind(runs, data, cfg, None)
        results.append([(trainer.train_epoch(), trainer.evaluate()) for _ in range(cfg.epochs)])
    assert trainer.train_graph is not None and trainer.eval_graph is not None
    for (eager_stats, eager_scores), (graph_stats, graph_scores) in zip(*results, strict=True):
        for a, b in zip(eager_stats, graph_stats, strict=True):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        for (_, a), (_, b) in zip(eager_scores, graph_scores, strict=True):
            assert abs(a - b) <= 0.5  # 5 of the 1,000 test images


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_fast_run_on_the_gpu_scores_as_the_loop_does(tmp_path, mnist, monkeypatch):
    exact_gpu_sums(monkeypatch)
    cfg = slow_micro()
    graphed = fit_fast(cfg, tmp_path / "graphed", "cuda", log=silent, data=mnist)
    loop = fit(cfg, tmp_path / "loop", "cuda", log=silent, data=mnist)
    for a, b in zip(loop.epochs, graphed.epochs, strict=True):
        assert abs(a.test_acc - b.test_acc) <= 1.0  # 10 of the 1,000 test images
    assert graphed.epochs[-1].test_acc > 30
