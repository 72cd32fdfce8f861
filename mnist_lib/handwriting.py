"""Your own digits: any image made to look like an MNIST digit, then classified.

MNIST's digits are light ink on a dark background, the ink scaled so that its longer side is 20
pixels (keeping its shape), then placed in a 28 x 28 frame with its centre of mass at the centre.
`to_mnist` does the same to a photo or a drawing of any size, dark on light or light on dark.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import UserError
from .data import normalize
from .files import IS_CHECKOUT, REPO_ROOT
from .fit import load_trained
from .record import RunFolder
from .train import predict

INK_SIZE = 20  # pixels: the longer side of a digit's ink in MNIST
FRAME = 28


def load_image(path: str | Path) -> np.ndarray:
    """A picture file as grey levels in [0, 1], shape (H, W)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except Exception as exc:  # PIL fails in many ways on a damaged or foreign file
        if isinstance(exc, FileNotFoundError):
            raise UserError(f"{path} is missing: give the path of a picture") from None
        if isinstance(exc, Image.UnidentifiedImageError):
            reason = "not a picture PIL can read"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        else:
            reason = f"{exc}".split("\n")[0] or type(exc).__name__  # e.g. truncated
        raise UserError(
            f"cannot read the image {path} ({reason}): give a PNG or JPEG file"
        ) from None


def to_mnist(grey: np.ndarray) -> torch.Tensor:
    """An image of one digit, grey levels (H, W) in [0, 1], as MNIST would store it: uint8
    (28, 28), light ink on black, the ink 20 px on its longer side, centred by its mass."""
    x = torch.as_tensor(grey, dtype=torch.float32)
    border = torch.cat([x[0], x[-1], x[:, 0], x[:, -1]])
    background = border.median()
    ink = x - background if background < 0.5 else background - x  # light ink on dark
    ink = (ink - 0.1 * ink.max()).clamp(min=0)  # paper texture and camera noise are not ink
    if ink.max() <= 0:
        raise UserError("the image has no ink: draw a dark digit on light paper, or the reverse")
    rows, cols = ink.sum(1).nonzero(), ink.sum(0).nonzero()
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # (h, w)
    scale = INK_SIZE / max(ink.shape)
    size = [max(1, round(side * scale)) for side in ink.shape]
    ink = F.interpolate(
        ink[None, None], size=size, mode="bilinear", antialias=True, align_corners=False
    )[0, 0]
    ink = ink / ink.max()
    ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    centre_y = int(round(float((ink * ys).sum() / ink.sum())))
    centre_x = int(round(float((ink * xs).sum() / ink.sum())))
    frame = torch.zeros(FRAME + 2 * INK_SIZE, FRAME + 2 * INK_SIZE)  # room to shift into
    top, left = INK_SIZE + FRAME // 2 - centre_y, INK_SIZE + FRAME // 2 - centre_x
    frame[top : top + size[0], left : left + size[1]] = ink
    frame = frame[INK_SIZE : INK_SIZE + FRAME, INK_SIZE : INK_SIZE + FRAME]
    return (frame * 255).round().to(torch.uint8)


def classify(model: torch.nn.Module, digits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, 10) of MNIST-style uint8 digits (N, 28, 28)."""
    device = next(model.parameters()).device
    return predict(model, normalize(digits).to(device)).cpu()


def default_model() -> Path:
    """The notebooks' trained `net` in a checkout."""
    if not IS_CHECKOUT:
        raise UserError(
            "predict without --model-file needs a checkout of the repository (git clone), "
            "whose results/net it reads: give --model-file, or run it from the clone"
        )
    return RunFolder(REPO_ROOT / "results" / "net").model


def classify_files(
    paths: list[Path], model_file: Path | None = None, top: int = 3
) -> Iterator[str]:
    """One line per image: its ``top`` classes and their probabilities."""
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    model = load_trained(model_file or default_model())
    digits = torch.stack([to_mnist(load_image(p)) for p in paths])
    for path, probs in zip(paths, classify(model, digits), strict=True):
        best = probs.argsort(descending=True)[:top]
        yield f"{path}: " + ", ".join(f"{int(c)} ({100 * probs[c]:.1f} %)" for c in best)
