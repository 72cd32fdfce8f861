"""Augmentation as one pure function on a whole batch (no per-image Python, no PIL)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor, max_degrees: float, max_shift: float, generator: torch.Generator
) -> torch.Tensor:
    """Rotate each image by U(-max_degrees, max_degrees) and shift it by U(-max_shift, max_shift) px.

    ``images`` is (B, 1, H, W), already normalised; the random numbers come from ``generator``
    (on the CPU, so a seed gives the same batch on every device). Never flips: digits are not
    mirror-symmetric. Pixels from outside take the border value, i.e. MNIST's background.
    """
    if max_degrees == 0 and max_shift == 0:
        return images
    b, _, h, w = images.shape
    u = torch.rand(b, 3, generator=generator).mul_(2).sub_(1)  # (B, 3) in [-1, 1)
    angle = u[:, 0] * math.radians(max_degrees)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / size.
    theta = torch.stack([
        torch.stack([cos, -sin, u[:, 1] * 2 * max_shift / w], dim=1),
        torch.stack([sin, cos, u[:, 2] * 2 * max_shift / h], dim=1),
    ], dim=1).to(images.device, images.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
