"""Augmentation as one pure function on a whole batch (no per-image Python, no PIL)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_thetas(
    n: int,
    max_degrees: float,
    max_shift: float,
    generator: torch.Generator,
    size: tuple[int, int] = (28, 28),
) -> torch.Tensor:
    """``n`` random affine matrices (n, 2, 3), on the CPU: a rotation by
    U(-max_degrees, max_degrees) and a shift by U(-max_shift, max_shift) pixels of an image of
    ``size`` (H, W) each.

    The numbers come from ``generator`` (on the CPU, so a seed gives the same batch on every
    device).
    Never flips: digits are not mirror-symmetric.
    """
    h, w = size
    u = torch.rand(n, 3, generator=generator).mul_(2).sub_(1)  # (n, 3) in [-1, 1)
    angle = u[:, 0] * math.radians(max_degrees)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / size.
    return torch.stack(
        [
            torch.stack([cos, -sin, u[:, 1] * 2 * max_shift / w], dim=1),
            torch.stack([sin, cos, u[:, 2] * 2 * max_shift / h], dim=1),
        ],
        dim=1,
    )


def affine(images: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    """Warp each image (B, 1, H, W) by its matrix (B, 2, 3); pixels from outside take the border
    value, i.e. MNIST's background. Each image is warped on its own, so a batch can be split
    freely."""
    thetas = thetas.to(images.device, images.dtype, non_blocking=True)  # no GPU sync
    grid = F.affine_grid(thetas, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(
    images: torch.Tensor, max_degrees: float, max_shift: float, generator: torch.Generator
) -> torch.Tensor:
    """Rotate each image (B, 1, H, W), already normalised, by U(-max_degrees, max_degrees) and
    shift it by U(-max_shift, max_shift) px (see `random_thetas`)."""
    if max_degrees == 0 and max_shift == 0:
        return images
    return affine(
        images, random_thetas(len(images), max_degrees, max_shift, generator, images.shape[-2:])
    )
