"""A model layer by layer: output shapes, parameters and receptive field, from forward hooks."""

from __future__ import annotations

import contextlib
import copy
import io

import torch
from torch import nn
from torchsummary import summary

WINDOWS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def first(value: int | tuple[int, ...]) -> int:
    """One side of a kernel size or stride (our kernels are square)."""
    return value[0] if isinstance(value, tuple) else value


def kernel_stride(
    module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tuple[int, int] | None:
    """The (effective kernel, stride) of a layer that looks at a window; None if pointwise."""
    if isinstance(module, WINDOWS):
        dilation = first(getattr(module, "dilation", 1))
        return dilation * (first(module.kernel_size) - 1) + 1, first(module.stride)
    if isinstance(module, ADAPTIVE_POOLS):
        n_in, n_out = in_shape[-1], out_shape[-1]
        stride = n_in // n_out
        return n_in - (n_out - 1) * stride, stride
    return None


def layer_table(model: nn.Module, input_size: tuple[int, ...] = (1, 28, 28)) -> list[dict]:
    """One row per call of a leaf module, in execution order: name, type, kernel and stride (None
    for pointwise layers), output shape (no batch), trainable params, receptive field ``rf`` (the
    width in input pixels of the square patch one output value sees) and ``jump`` (input pixels
    between neighbouring outputs).

    A window of k with stride s grows the RF by (k - 1) * jump and multiplies the jump by s;
    pointwise layers (1x1 convs count as windows of 1, BatchNorm, ReLU, Linear) keep both.
    """
    model = (
        copy.deepcopy(model).cpu().eval()
    )  # a copy in eval mode: BatchNorm's running stats stay as they are
    calls = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            calls.append((name, module, tuple(inputs[0].shape), tuple(output.shape)))

        return hook

    for name, module in model.named_modules():
        if not any(module.children()):
            module.register_forward_hook(record(name))
    with torch.no_grad():
        model(torch.zeros(1, *input_size))

    rows, rf, jump = [], 1, 1
    for name, module, in_shape, out_shape in calls:
        kernel, stride = kernel_stride(module, in_shape, out_shape) or (None, None)
        if kernel is not None:
            rf += (kernel - 1) * jump
            jump *= stride
        params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "kernel": kernel,
                "stride": stride,
                "output": out_shape[1:],
                "params": params,
                "rf": rf,
                "jump": jump,
            }
        )
    return rows


def format_layer_table(rows: list[dict], skip: tuple[str, ...] = ()) -> str:
    """The rows as a fixed-width text table; types in ``skip`` are left out, the total counts
    all rows."""
    shown = [r for r in rows if r["type"] not in skip]

    def shape(r: dict) -> str:
        return "x".join(str(d) for d in r["output"])

    def window(r: dict) -> str:
        return "" if r["kernel"] is None else f"{r['kernel']}/{r['stride']}"

    name_w = max([len("layer")] + [len(r["name"]) for r in shown])
    type_w = max([len("type")] + [len(r["type"]) for r in shown])
    header = (
        f"{'layer':<{name_w}}  {'type':<{type_w}}  {'k/s':>4}  {'output':>10}  {'params':>7}  "
        f"{'RF':>3}  {'jump':>4}"
    )
    lines = [header, "-" * len(header)]
    for r in shown:
        lines.append(
            f"{r['name']:<{name_w}}  {r['type']:<{type_w}}  {window(r):>4}  {shape(r):>10}  "
            f"{r['params']:>7,}  {r['rf']:>3}  {r['jump']:>4}"
        )
    lines.append("-" * len(header))
    lines.append(f"total params (all layers): {sum(r['params'] for r in rows):,}")
    if skip:
        lines.append(f"not shown: {', '.join(skip)} (no parameters, shape and RF unchanged)")
    return "\n".join(lines)


def layer_stats(rows: list[dict]) -> dict:
    """A few numbers that compare two architectures: params, conv counts by kernel, widest layer,
    RF at the last conv."""
    convs = [r for r in rows if r["type"] == "Conv2d"]
    return {
        "params": sum(r["params"] for r in rows),
        "convs": len(convs),
        "1x1 convs": sum(r["kernel"] == 1 for r in convs),
        "pools": sum(r["type"].endswith("Pool2d") for r in rows),
        "linear": sum(r["type"] == "Linear" for r in rows),
        "widest": max(r["output"][0] for r in rows if len(r["output"]) == 3),
        "rf_last_conv": convs[-1]["rf"] if convs else 0,
        "output": rows[-1]["output"],
    }


def summary_text(model: nn.Module, input_size: tuple[int, ...] = (1, 28, 28)) -> str:
    """torchsummary's table of ``model`` as a string."""
    # torchsummary runs a random batch through the model in train mode: on a copy, so BatchNorm's
    # running stats stay, and inside fork_rng, so the caller's random stream stays.
    model = copy.deepcopy(model).cpu()
    out = io.StringIO()
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(out):
        summary(model, input_size, device="cpu")  # torchsummary 1.5.1 wants "cpu" as a string
    return out.getvalue().rstrip("\n")
