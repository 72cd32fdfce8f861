"""Runs trained together (`StackedTrainer`): each starts where it would alone, trains as it would
alone up to rounding, and resumes; on a GPU the recorded graphs replay what eager steps compute."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from helpers import silent

from mnist_lib.augment import random_thetas
from mnist_lib.config import TrainConfig, recipe
from mnist_lib.data import DeviceData
from mnist_lib.device import autocast
from mnist_lib.errors import UserError
from mnist_lib.model import model_names
from mnist_lib.run import fit, fit_together, new_member
from mnist_lib.speed import StackedTrainer, make_step, trains_together
from mnist_lib.speed.stacked import autocast_cache_off
from mnist_lib.train import evaluate, train_one_epoch

CPU = torch.device("cpu")


def slow_micro(**overrides) -> TrainConfig:
    """MicroNet on 4,000 images at a low learning rate: two seeds learn (to 40-50 % on 1,000
    test images) without the first steps' chaos that makes any two roundings diverge."""
    base = {"epochs": 2, "limit_train": 4000, "limit_test": 1000, "lr": 0.02, "precision": "fp32"}
    return recipe("micro", **{**base, **overrides})


def together(cfgs: list[TrainConfig], dirs: list, mnist, device: str = "cpu", **options) -> list:
    return fit_together(
        cfgs, dirs, device=device, progress=False, log=silent, data=mnist, together=True, **options
    )


def test_a_cpu_trains_seeds_one_at_a_time_and_a_gpu_together():
    assert not trains_together(CPU)
    assert trains_together(torch.device("cuda"))  # only named: nothing runs on it


@pytest.mark.parametrize("name", model_names())
def test_each_run_s_first_step_is_its_network_s_on_its_shards(mnist, name):
    """Every model, course and experiment, two seeds, three shards of unequal size: the first
    step's loss of each run is its own network's, each shard normalised by its own batch
    statistics (BatchNorm on that shard alone), and each run's statistics move as its first
    shard's do."""
    cfg = recipe(name, limit_train=200, limit_test=100, batch_size=100, shards=3,
                 precision="fp32", rotate=0.0, shift=0.0, dropout=0.0)  # fmt: skip
    data = DeviceData.from_mnist(mnist, CPU, 200, 100)
    members = [new_member(replace(cfg, seed=s), CPU, 200) for s in (0, 1)]
    alone = [copy.deepcopy(m.model).train() for m in members]
    trainer = StackedTrainer(members, data, cfg, None, cfg.shards)
    trainer.prepare_epoch()
    trainer.train_step()
    for run, model in enumerate(alone):
        idx = trainer.order[run, 0]
        first = copy.deepcopy(model)
        first(data.train_x[idx[:34]])  # the first of shards of 34, 33 and 33 images
        losses = [
            F.nll_loss(model(data.train_x[i]), data.train_y[i], reduction="sum")
            for i in idx.tensor_split(3)
        ]
        expected = torch.stack(losses).sum() / 100
        assert trainer.loss_sum[run].item() / 100 == pytest.approx(expected.item(), rel=1e-5)
        for mine, its in zip(members[run].model.buffers(), first.buffers(), strict=True):
            torch.testing.assert_close(mine, its, rtol=1e-5, atol=1e-6)
    assert trainer.loss_sum[0] != trainer.loss_sum[1]  # two different networks


def test_in_float64_an_epoch_together_is_the_loop_s_epoch_exactly(mnist):
    """The same epoch in float64, where rounding cannot grow: `net` with two BatchNorm shards,
    weight decay and the weight average, by StackedTrainer and by the loop of `train_one_epoch`:
    every weight, average, momentum and statistic agrees to 1e-9 of its size, and so does the
    test pass of the weight average. With a zoom, whose draws come after each step's rotations
    and shifts, so that the trainer must draw step by step to draw the same numbers."""
    cfg = recipe("net", epochs=3, limit_train=512, limit_test=256, precision="fp32",
                 weight_decay=0.05, scale=0.1)  # fmt: skip
    data = DeviceData.from_mnist(mnist, CPU, 512, 256)
    data = DeviceData(*(t.double() if t.is_floating_point() else t for t in (
        data.train_x, data.train_y, data.eval_x, data.eval_y)), data.split)  # fmt: skip
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        loop, together = (new_member(cfg, CPU, 512) for _ in range(2))
        step = make_step(loop.model, cfg.shards, None)
        mine = train_one_epoch(
            loop.model, data, loop.optimizer, loop.scheduler, cfg, loop.generator, step, loop.ema
        )
        trainer = StackedTrainer([together], data, cfg, None, cfg.shards)
        [theirs] = trainer.train_epoch()
        trainer.store()
        [(their_loss, their_acc)] = trainer.evaluate()
        my_loss, my_acc = evaluate(loop.ema.module, data.eval_x, data.eval_y, cfg.eval_batch_size)
    finally:
        torch.set_default_dtype(default)
    assert next(together.model.parameters()).dtype == torch.float64
    pairs = [
        *zip(loop.model.parameters(), together.model.parameters(), strict=True),
        *zip(loop.model.buffers(), together.model.buffers(), strict=True),
        *zip(loop.ema.module.parameters(), together.ema.module.parameters(), strict=True),
        *zip(loop.ema.module.buffers(), together.ema.module.buffers(), strict=True),
    ]
    for p, q in zip(loop.model.parameters(), together.model.parameters(), strict=True):
        pairs.append((loop.optimizer.state[p]["momentum_buffer"],
                      together.optimizer.state[q]["momentum_buffer"]))  # fmt: skip
    for a, b in pairs:
        if a.is_floating_point():
            assert (a - b).norm() <= 1e-9 * a.norm()
        else:
            assert torch.equal(a, b)  # BatchNorm's batch counters
    assert theirs["train_loss"] == pytest.approx(mine["train_loss"], rel=1e-12)
    assert their_loss == pytest.approx(my_loss, rel=1e-9)  # the weight average's test pass
    assert their_acc == my_acc


@pytest.mark.parametrize("ema", [0.999, 0.0])
def test_an_epoch_together_is_the_loop_s_epoch(mnist, ema):
    """`net` with two BatchNorm shards, weight decay and (or without) the weight average: one
    epoch by StackedTrainer and by the loop of `train_one_epoch` agree to rounding. Both in the
    default memory layout: channels-last convolutions on this CPU differ by more than rounding."""
    cfg = recipe("net", epochs=3, limit_train=512, limit_test=256, precision="fp32", ema=ema,
                 weight_decay=0.05)  # fmt: skip
    data = DeviceData.from_mnist(mnist, CPU, 512, 256)
    loop, together = (new_member(cfg, CPU, 512) for _ in range(2))
    for m in (loop.model, *([loop.ema.module] if ema else [])):
        m.to(memory_format=torch.contiguous_format)
    step = make_step(loop.model, cfg.shards, None)
    mine = train_one_epoch(
        loop.model, data, loop.optimizer, loop.scheduler, cfg, loop.generator, step, loop.ema
    )
    trainer = StackedTrainer(
        [together], data, cfg, None, cfg.shards, layout=torch.contiguous_format
    )
    [theirs] = trainer.train_epoch()
    trainer.store()
    start = new_member(cfg, CPU, 512).model.parameters()

    def off_by(a: torch.Tensor, b: torch.Tensor, reference: torch.Tensor) -> float:
        return ((a - b).norm() / (a - reference).norm()).item()

    for p, q, p0 in zip(loop.model.parameters(), together.model.parameters(), start, strict=True):
        assert off_by(p, q, p0) < 0.02  # of the epoch's change
        a, b = (m.optimizer.state[x]["momentum_buffer"] for m, x in ((loop, p), (together, q)))
        assert off_by(a, b, torch.zeros_like(a)) < 0.02
    for a, b in zip(loop.model.buffers(), together.model.buffers(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)  # the first shard's statistics
    if ema:
        assert together.ema.updates == loop.ema.updates == 2
        averages = zip(loop.ema.module.parameters(), together.ema.module.parameters(), strict=True)
        for (a, b), p0 in zip(averages, new_member(cfg, CPU, 512).model.parameters(), strict=True):
            assert off_by(a, b, p0) < 0.02
    assert theirs["train_loss"] == pytest.approx(mine["train_loss"], rel=1e-5)
    assert together.scheduler.get_last_lr() == loop.scheduler.get_last_lr()


def test_two_seeds_together_train_exactly_as_each_alone_in_the_trainer(tmp_path, mnist):
    """Nothing passes between runs trained together: each seed's history is, number for number,
    the one it gets trained by itself (how the trainer's step matches the loop's is the test
    above; in fp32 a few hundred steps of that rounding grow to a percent of this loss)."""
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
    with pytest.raises(UserError, match=r"NaN/inf in epoch 1, seed 0: the learning rate"):
        together(cfgs, [tmp_path / f"seed-{c.seed}" for c in cfgs], mnist)


def test_runs_together_must_differ_in_their_seed_only(tmp_path, mnist):
    cfgs = [slow_micro(seed=0), slow_micro(seed=1, lr=0.05)]
    with pytest.raises(ValueError, match="seed only"):
        together(cfgs, [tmp_path / "a", tmp_path / "b"], mnist)


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
    """The same two seeds of two shards each, eager on one stream, and recorded with every shard
    on its own stream: the same numbers every epoch up to rounding (graphs record the first
    epoch's step and the second epoch's test pass, and replay them from then on). In fp32: in
    bf16 the first epoch's mean loss differed by 1.1e-4 (H200, when the recorded step still
    augmented under autocast)."""
    exact_gpu_sums(monkeypatch)
    cuda = torch.device("cuda")
    cfg = recipe("net", epochs=3, limit_train=4096, limit_test=1000, lr=0.02)
    data = DeviceData.from_mnist(mnist, cuda, 4096, 1000)
    results = []
    for graphs in (False, True):
        members = [new_member(replace(cfg, seed=s), cuda, 4096) for s in (0, 1)]
        trainer = StackedTrainer(members, data, cfg, None, cfg.shards, graphs=graphs)
        assert len(trainer.streams) == 4
        if not graphs:
            trainer.streams = []  # every shard in turn on the current stream, as on a CPU
        results.append([(trainer.train_epoch(), trainer.evaluate()) for _ in range(cfg.epochs)])
        assert (trainer.train_graph is not None) == graphs
        assert (trainer.eval_graph is not None) == graphs
    for (eager_stats, eager_scores), (graph_stats, graph_scores) in zip(*results, strict=True):
        for a, b in zip(eager_stats, graph_stats, strict=True):
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
            assert b["first_bad_step"] == a["first_bad_step"] == -1
        for (_, a), (_, b) in zip(eager_scores, graph_scores, strict=True):
            assert abs(a - b) <= 0.5  # 5 of the 1,000 test images


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_on_the_gpu_scores_as_the_eager_loop_does(tmp_path, mnist, monkeypatch):
    exact_gpu_sums(monkeypatch)
    cfg = slow_micro()
    graphed = fit(cfg, tmp_path / "graphed", device="cuda", progress=False, log=silent, data=mnist)
    eager = fit_together(
        [cfg], [tmp_path / "eager"], device="cuda", progress=False, log=silent, data=mnist,
        together=False,
    )[0]  # fmt: skip
    for a, b in zip(eager.epochs, graphed.epochs, strict=True):
        assert abs(a.test_acc - b.test_acc) <= 1.0  # 10 of the 1,000 test images, as on the CPU
    assert graphed.epochs[-1].test_acc > 30
