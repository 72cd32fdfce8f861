"""Batch augmentation: a pure function of (images, ranges, generator) that moves digits and never
mirrors them."""

import pytest
import torch

from mnist_lib.augment import random_affine, random_thetas
from mnist_lib.data import normalize


@pytest.fixture(scope="module")
def digits(mnist):
    return normalize(mnist.test_images[:256])  # (256, 1, 28, 28)


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 2): the ink's mean (x, y) in pixels; the background counts as no ink."""
    ink = (images - images.amin(dim=(1, 2, 3), keepdim=True))[:, 0]  # (B, H, W)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    total = ink.sum((1, 2))
    return torch.stack([(ink * xs).sum((1, 2)) / total, (ink * ys).sum((1, 2)) / total], dim=1)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two (B, 1, H, W) batches."""
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def test_zero_ranges_change_nothing(digits):
    out = random_affine(digits, 0, 0, torch.Generator().manual_seed(0))
    assert torch.equal(out, digits)


def test_shape_dtype_and_determinism(digits):
    a = random_affine(digits, 7, 1.5, torch.Generator().manual_seed(3))
    b = random_affine(digits, 7, 1.5, torch.Generator().manual_seed(3))
    c = random_affine(digits, 7, 1.5, torch.Generator().manual_seed(4))
    assert a.shape == digits.shape and a.dtype == digits.dtype
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, digits)


def test_shift_moves_the_ink_by_the_drawn_amount(digits):
    """Rotation 0, shift up to k px: each digit's centre of mass moves by exactly the drawn shift.

    The draw is replayed from the same seed: u (B, 3) in [-1, 1), shift (x, y) = k * u[:, 1:].
    affine_grid samples the input at (output + shift), so the ink moves by -shift; bilinear
    sampling keeps the centre of mass exact while the ink stays clear of the border.
    """
    k, margin = 2.0, 3
    u = torch.rand(len(digits), 3, generator=torch.Generator().manual_seed(5)).mul_(2).sub_(1)
    out = random_affine(digits, 0, k, torch.Generator().manual_seed(5))
    moved = centre_of_mass(out) - centre_of_mass(digits)  # (B, 2)
    blank = digits[:, 0] == digits.min()  # (B, 28, 28)
    inside = (
        blank[:, :margin].all((1, 2))
        & blank[:, -margin:].all((1, 2))
        & blank[:, :, :margin].all((1, 2))
        & blank[:, :, -margin:].all((1, 2))
    )
    assert inside.sum() > 100
    torch.testing.assert_close(moved[inside], -k * u[inside, 1:], atol=1e-3, rtol=0)
    assert moved[inside].abs().max() > 0.9 * k  # it really moved, by up to k px


def test_rotation_never_flips(digits):
    """±7° keeps each digit close to itself; a mirror image of a digit is far from it."""
    rotated = random_affine(digits, 7, 0, torch.Generator().manual_seed(0))
    kept = correlation(rotated, digits)
    mirrored = torch.maximum(
        correlation(digits.flip(-1), digits), correlation(digits.flip(-2), digits)
    )
    assert kept.mean() > 0.9 and kept.min() > 0.6
    assert mirrored.mean() < 0.75
    assert (kept > mirrored).float().mean() > 0.95


def spread(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B,): the ink's root-mean-square distance from its centre of mass, px."""
    ink = (images - images.amin(dim=(1, 2, 3), keepdim=True))[:, 0]
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    x0, y0 = centre_of_mass(images).T
    r2 = (xs - x0[:, None, None]) ** 2 + (ys - y0[:, None, None]) ** 2
    return ((ink * r2).sum((1, 2)) / ink.sum((1, 2))).sqrt()


def test_zoom_scales_the_ink_by_the_drawn_factor(digits):
    """Rotation and shift 0, zoom up to 0.2: each digit's ink spreads by 1 / f, where f is drawn
    after the (unused) rotations and shifts: f = 1 + 0.2 u, u ~ U(-1, 1)."""
    generator = torch.Generator().manual_seed(6)
    torch.rand(len(digits), 3, generator=generator)
    f = 1 + 0.2 * (torch.rand(len(digits), generator=generator) * 2 - 1)
    out = random_affine(digits, 0, 0, torch.Generator().manual_seed(6), max_scale=0.2)
    ratio = spread(out) / spread(digits)
    blank = digits[:, 0] == digits.min()  # digits that stay clear of the border at 1 / 0.8
    inside = blank[:, :4].all((1, 2)) & blank[:, -4:].all((1, 2))
    inside &= blank[:, :, :4].all((1, 2)) & blank[:, :, -4:].all((1, 2))
    assert inside.sum() > 50
    torch.testing.assert_close(ratio[inside], 1 / f[inside], atol=0.03, rtol=0)
    assert (1 / f).max() > 1.2 and (1 / f).min() < 0.85  # it zoomed both ways


def test_a_zoom_leaves_the_other_draws_as_they_were():
    plain = random_thetas(64, 7, 1.5, torch.Generator().manual_seed(7))
    zoomed = random_thetas(64, 7, 1.5, torch.Generator().manual_seed(7), max_scale=0.1)
    assert torch.equal(zoomed[:, :, 2], plain[:, :, 2])  # the shifts
    f = zoomed[:, :, :2] / plain[:, :, :2]  # one factor per image, in [0.9, 1.1)
    torch.testing.assert_close(f, f[:, :1, :1].expand_as(f))
    assert f.min() >= 0.9 and f.max() < 1.1 and f.std() > 0.03
