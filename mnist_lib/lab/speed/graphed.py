"""`StackedTrainer` on a GPU: every run's ghost batch on a CUDA stream of its own (a network this
small leaves most of the GPU idle, and the streams fill it side by side), and the whole step
recorded once as a CUDA graph and replayed, one launch per step and no waiting for the GPU
inside an epoch; the test pass too."""

import contextlib
from collections.abc import Iterator

import torch

from .stacked import StackedTrainer

# Eager steps on a side stream before a step is recorded, as PyTorch's CUDA graph docs advise:
# the first calls set up cuDNN and the allocator, which a recording must not contain.
WARM_UP_STEPS = 3


class GraphedTrainer(StackedTrainer):
    """`StackedTrainer` whose step and test pass are CUDA graphs, on streams side by side."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.streams = [
            torch.cuda.Stream(self.device) for _ in range(self.runs * self.shards)
        ]  # one per run and ghost batch
        self.train_graph: torch.cuda.CUDAGraph | None = None
        self.eval_graph: torch.cuda.CUDAGraph | None = None
        self.evaluated = False

    @contextlib.contextmanager
    def side_by_side(self, jobs: int) -> Iterator[list[contextlib.AbstractContextManager]]:
        """Streams of their own that start after the work queued so far and that this stream
        waits for at the end."""
        here = torch.cuda.current_stream(self.device)
        streams = self.streams[:jobs]
        for stream in streams:
            stream.wait_stream(here)
        try:
            yield [torch.cuda.stream(stream) for stream in streams]
        finally:  # joined back even after an error, which a recording needs to end cleanly
            for stream in streams:
                here.wait_stream(stream)

    def run_steps(self) -> None:
        """Replay the recorded step; the first epoch warms up on a side stream (real steps of
        the epoch), records the step (which runs nothing) and replays the rest."""
        with quiet_stream_mismatch():
            if self.train_graph is not None:
                for _ in range(self.steps):
                    self.train_graph.replay()
                return
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            warm = min(WARM_UP_STEPS, self.steps)
            with torch.cuda.stream(side):
                for _ in range(warm):
                    self.train_step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.train_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.train_graph), autocast_cache_off(self.device):
                self.train_step()  # recorded, not run: the counter stays at the warm-up's end
            for _ in range(self.steps - warm):
                self.train_graph.replay()

    def run_eval_pass(self) -> None:
        """The first pass warms up, the second is recorded, the later ones replay it."""
        if self.eval_graph is None and self.evaluated:
            self.eval_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.eval_graph), autocast_cache_off(self.device):
                self.eval_pass()
        if self.eval_graph is not None:
            self.eval_graph.replay()
        else:
            self.eval_pass()
        self.evaluated = True


def autocast_cache_off(device: torch.device) -> torch.autocast:
    """While recording: autocast's weight cache off, which a CUDA graph must not hold across
    replays (the passes' own autocast inherits it), and autocast itself off around them, as in
    the eager steps: augmentation and losses in fp32."""
    return torch.autocast(device.type, enabled=False, cache_enabled=False)


@contextlib.contextmanager
def quiet_stream_mismatch() -> Iterator[None]:
    """Without autograd's warning that a gradient arrives from another stream than its weight's
    (a warm-up's side stream, a ghost batch's own stream): true, harmless (autograd syncs them),
    and noise in a log; back on (its default) afterwards."""
    warn = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if warn is not None:
        warn(False)
    try:
        yield
    finally:
        if warn is not None:
            warn(True)
