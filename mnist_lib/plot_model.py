"""What a trained model does: its mistakes (confusion matrix, the misclassified digits), what its
layers respond to (filters, feature maps, receptive fields, class activation maps), and its reading
of one digit. Each function returns a matplotlib Figure (see `plot`)."""

import math

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .data import normalize
from .plot import image_axes


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """Counts (classes, classes): row = true label, column = prediction."""
    labels, preds = labels.cpu().long(), preds.cpu().long()
    return torch.bincount(labels * classes + preds, minlength=classes * classes).reshape(
        classes, classes
    )


def confusion_figure(cm: torch.Tensor) -> Figure:
    """The confusion matrix with counts in the cells, on a log colour scale: the few errors show."""
    counts = cm.cpu().numpy()
    total, errors = int(counts.sum()), int(counts.sum() - np.trace(counts))
    fig = Figure(figsize=(6.6, 5.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_equal(counts, 0), cmap="Blues", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2))
    )
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(
                j,
                i,
                str(n),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if n > math.sqrt(counts.max()) else "black",
            )
    ax.set_xticks(range(len(counts)))
    ax.set_yticks(range(len(counts)))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    fig.colorbar(image, ax=ax, label="test images (count, log colour scale)")
    accuracy = 100 * (total - errors) / total
    ax.set_title(f"Confusion matrix: {errors} errors in {total:,} test images ({accuracy:.2f} %)")
    return fig


def misclassified(
    images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, n: int = 24, cols: int = 8
) -> Figure:
    """The misclassified images, most confident mistakes first; images uint8 (N, 28, 28), probs
    (N, 10)."""
    probs, labels = probs.cpu(), labels.cpu()
    confidence, preds = probs.max(1)
    wrong = (preds != labels).nonzero().flatten()
    shown = wrong[confidence[wrong].argsort(descending=True)][:n]
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(1.25 * cols, 1.55 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes:
        ax.set_axis_off()
    for ax, i in zip(axes, shown.tolist(), strict=False):  # fewer mistakes than panels is fine
        ax.set_axis_on()
        image_axes(ax)
        ax.imshow(images[i].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(
            f"true {int(labels[i])}, pred {int(preds[i])}\n{100 * confidence[i]:.0f} % sure",
            fontsize=8,
        )
    fig.suptitle(
        f"Misclassified test digits: {len(shown)} of {len(wrong)} errors in {len(labels):,} "
        "images, most confident first"
    )
    fig.supxlabel(
        "test image (28 x 28 px); above each: true label, prediction, probability of the "
        "prediction",
        fontsize=9,
    )
    return fig


def first_layer_filters(model: torch.nn.Module) -> Figure:
    """The 3x3 kernels of the first convolution, one panel per output channel."""
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    weights = conv.weight.detach().float().cpu()[:, 0]  # (C, k, k)
    limit = weights.abs().max().item()
    fig = Figure(figsize=(1.3 * len(weights) + 0.8, 2.0), layout="constrained")
    axes = fig.subplots(1, len(weights), squeeze=False)[0]
    for i, (ax, kernel) in enumerate(zip(axes, weights, strict=True)):
        image_axes(ax)
        image = ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"channel {i}", fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="weight")
    fig.suptitle(
        f"The first layer's {len(weights)} filters ({weights.shape[-1]}x"
        f"{weights.shape[-1]}): red adds where the pixel is bright, blue subtracts"
    )
    return fig


def activations(model: torch.nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output (C, H, W) of each of ``model``'s top-level blocks that gives feature maps, for one
    normalised image (1, 28, 28), in eval mode."""
    maps: dict[str, torch.Tensor] = {}
    hooks = [
        child.register_forward_hook(
            lambda m, i, o, name=name: (
                maps.update({name: o[0].detach().float().cpu()}) if o.dim() == 4 else None
            )
        )
        for name, child in model.named_children()
    ]
    try:
        with torch.inference_mode():
            model.eval()(image[None].to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: m for name, m in maps.items() if m.shape[-1] > 1}


def feature_maps(model: torch.nn.Module, image: torch.Tensor, channels: int = 8) -> Figure:
    """One digit through the network: the first ``channels`` feature maps after each block."""
    maps = activations(model, image)
    fig = Figure(figsize=(1.2 * channels + 1.8, 1.3 * len(maps) + 0.9), layout="constrained")
    axes = fig.subplots(len(maps), channels, squeeze=False)
    for row, (name, block) in zip(axes, maps.items(), strict=True):
        for c, ax in enumerate(row):
            image_axes(ax)
            if c < len(block):
                ax.imshow(block[c].numpy(), cmap="magma")
        row[0].set_ylabel(f"{name}\n{'x'.join(map(str, block.shape))}", fontsize=8)
    fig.suptitle(
        "One test digit through the network: the first channels after each block "
        "(bright = strong activation)"
    )
    return fig


def receptive_fields(rows: list[dict], image: torch.Tensor) -> Figure:
    """The receptive field of one output value after each convolution, drawn on a digit
    (uint8, 28 x 28): the square of input pixels that value depends on."""
    from matplotlib.patches import Rectangle

    convs = [r for r in rows if r["type"] == "Conv2d"]
    fig = Figure(figsize=(1.6 * len(convs) + 0.5, 2.3), layout="constrained")
    axes = fig.subplots(1, len(convs), squeeze=False)[0]
    for ax, r in zip(axes, convs, strict=True):
        image_axes(ax)
        ax.imshow(image.cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        corner = 13.5 - r["rf"] / 2 + 0.5
        ax.add_patch(
            Rectangle(
                (corner - 0.5, corner - 0.5),
                r["rf"],
                r["rf"],
                fill=False,
                edgecolor="tab:red",
                linewidth=1.5,
            )
        )
        ax.set_xlim(-0.5 - 3, 27.5 + 3)
        ax.set_ylim(27.5 + 3, -0.5 - 3)
        ax.set_title(f"{r['name']}\nRF {r['rf']} px", fontsize=8)
    fig.suptitle("Receptive field of one output value after each convolution (red square)")
    return fig


def class_activation_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    n: int = 8,
) -> Figure:
    """Where the network looked, for the ``n`` most confident mistakes: the class activation map
    of the predicted class (GAP + Linear make it the dense weights applied to the last feature
    maps), over each digit. ``images`` uint8 (N, 28, 28), ``probs`` (N, 10)."""
    confidence, preds = probs.max(1)
    wrong = (preds != labels.cpu()).nonzero().flatten()
    shown = wrong[confidence[wrong].argsort(descending=True)][:n].tolist()
    features: dict[str, torch.Tensor] = {}
    hook = model.gap.register_forward_hook(lambda m, i, o: features.update(x=i[0].detach()))
    try:
        with torch.inference_mode():
            model.eval()(normalize(images[shown]).to(next(model.parameters()).device))
    finally:
        hook.remove()
    weights = model.dense.weight.detach().float().cpu()  # (10, C)
    maps = torch.einsum("kc,nchw->nkhw", weights, features["x"].float().cpu())  # (n, 10, h, w)
    fig = Figure(figsize=(1.5 * max(len(shown), 1) + 0.5, 2.3), layout="constrained")
    axes = fig.subplots(1, max(len(shown), 1), squeeze=False)[0]
    for ax, i, cam in zip(axes, shown, maps, strict=False):
        image_axes(ax)
        heat = torch.nn.functional.interpolate(
            cam[preds[i]][None, None], size=(28, 28), mode="bilinear", align_corners=False
        )[0, 0]
        ax.imshow(images[i].cpu().numpy(), cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat.numpy(), cmap="jet", alpha=0.45)
        ax.set_title(f"true {int(labels[i])}, read {int(preds[i])}", fontsize=8)
    fig.suptitle(
        "Class activation maps of the most confident mistakes: where the predicted "
        "class found its evidence (red)"
    )
    return fig


def prediction(image: torch.Tensor, probs: torch.Tensor, title: str) -> Figure:
    """A digit as the network sees it (uint8, 28 x 28) and its class probabilities."""
    fig = Figure(figsize=(7.5, 2.8), layout="constrained")
    ax_image, ax_bars = fig.subplots(1, 2, width_ratios=[1, 2.2])
    image_axes(ax_image)
    ax_image.imshow(image.cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
    ax_image.set_title("as MNIST stores it", fontsize=9)
    best = int(probs.argmax())
    ax_bars.bar(
        range(10),
        100 * probs.numpy(),
        color=["tab:green" if c == best else "tab:gray" for c in range(10)],
    )
    ax_bars.set_xticks(range(10))
    ax_bars.set_ylim(0, 105)
    ax_bars.set_xlabel("digit")
    ax_bars.set_ylabel("probability (%)")
    fig.suptitle(f"{title}: read as {best} ({100 * probs[best]:.1f} %)")
    return fig
