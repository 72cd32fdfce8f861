"""Augmentation as one pure function on a whole batch (no per-image Python, no PIL)."""

import math

import torch
import torch.nn.functional as F


def random_thetas(
    n: int,
    max_degrees: float,
    max_shift: float,
    generator: torch.Generator,
    size: tuple[int, int] = (28, 28),
    max_scale: float = 0.0,
) -> torch.Tensor:
    """``n`` random affine matrices (n, 2, 3), on the CPU: a rotation by
    U(-max_degrees, max_degrees) and a shift by U(-max_shift, max_shift) pixels of an image of
    ``size`` (H, W) each, and with ``max_scale`` a zoom by 1 / f, f ~ U(1 - max_scale,
    1 + max_scale) (drawn after the rest, so that 0 leaves the other draws as they were).

    The numbers come from ``generator`` (on the CPU, so a seed gives the same batch on every
    device).
    Never flips: digits are not mirror-symmetric.
    """
    h, w = size
    u = torch.rand(n, 3, generator=generator).mul_(2).sub_(1)  # (n, 3) in [-1, 1)
    angle = u[:, 0] * math.radians(max_degrees)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / size.
    thetas = torch.stack(
        [
            torch.stack([cos, -sin, u[:, 1] * 2 * max_shift / w], dim=1),
            torch.stack([sin, cos, u[:, 2] * 2 * max_shift / h], dim=1),
        ],
        dim=1,
    )
    if max_scale:
        # theta maps output to input coordinates: f < 1 shows the digit larger
        f = 1 + max_scale * (torch.rand(n, generator=generator) * 2 - 1)
        thetas[:, :, :2] *= f[:, None, None]
    return thetas


def affine(images: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    """Warp each image (B, 1, H, W) by its matrix (B, 2, 3); pixels from outside take the border
    value, i.e. MNIST's background. Each image is warped on its own, so a batch can be split
    freely."""
    thetas = thetas.to(images.device, images.dtype, non_blocking=True)  # no GPU sync
    grid = F.affine_grid(thetas, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(
    images: torch.Tensor,
    max_degrees: float,
    max_shift: float,
    generator: torch.Generator,
    max_scale: float = 0.0,
) -> torch.Tensor:
    """Rotate each image (B, 1, H, W), already normalised, by U(-max_degrees, max_degrees),
    shift it by U(-max_shift, max_shift) px and zoom it by up to ``max_scale`` (see
    `random_thetas`)."""
    if max_degrees == 0 and max_shift == 0 and max_scale == 0:
        return images
    thetas = random_thetas(
        len(images), max_degrees, max_shift, generator, images.shape[-2:], max_scale
    )
    return affine(images, thetas)
