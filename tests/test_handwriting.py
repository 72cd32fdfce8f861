"""Your own digit: any picture of one digit is prepared the way MNIST's were, then classified."""

import pytest
import torch
import torch.nn.functional as F
from helpers import run_cli
from PIL import Image

from mnist_lib.config import UserError
from mnist_lib.files import REPO_ROOT
from mnist_lib.handwriting import to_mnist

RESULTS_DIR = REPO_ROOT / "results"


def as_picture(digit: torch.Tensor, size: tuple[int, int], dark_on_light: bool) -> torch.Tensor:
    """An MNIST digit (uint8, 28 x 28) as a photo might show it: another size and aspect, and
    (optionally) dark ink on light paper; grey levels in [0, 1]."""
    big = F.interpolate(digit.float()[None, None] / 255, size=size, mode="bilinear")[0, 0]
    return 1 - big if dark_on_light else big


def centre_of_mass(image: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    w = image.float()
    return torch.stack([(w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()])


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_a_rescaled_digit_comes_back_as_mnist_stores_it(mnist, dark_on_light):
    for digit in mnist.test_images[:20]:
        prepared = to_mnist(as_picture(digit, (140, 140), dark_on_light).numpy())
        assert prepared.dtype == torch.uint8 and prepared.shape == (28, 28)
        assert prepared.max() == 255 and prepared[0].max() == 0  # light ink, dark border
        rows, cols = prepared.sum(1).nonzero(), prepared.sum(0).nonzero()
        assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (20, 21)
        assert (centre_of_mass(prepared) - 13.5).abs().max() <= 1.0
        similarity = torch.corrcoef(torch.stack([prepared.flatten(), digit.flatten()]).float())[
            0, 1
        ]
        assert similarity > 0.8


def test_a_blank_picture_is_refused():
    with pytest.raises(UserError, match="no ink"):
        to_mnist(torch.full((50, 40), 0.8).numpy())


@pytest.mark.training
def test_predict_reads_pictures_of_any_size(mnist, tmp_path):
    """The committed net reads 20 test digits drawn as dark ink on light paper, 3.5 times larger
    and stretched."""
    paths = []
    for i, digit in enumerate(mnist.test_images[:20]):
        picture = as_picture(digit, (98, 84), dark_on_light=True)
        path = tmp_path / f"digit-{i}.png"
        Image.fromarray((picture * 255).round().byte().numpy()).save(path)
        paths.append(path)
    result = run_cli("predict", *paths, "--model-file", RESULTS_DIR / "net", "--top", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    read = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    assert sum(r == int(t) for r, t in zip(read, mnist.test_labels[:20], strict=True)) >= 19
    assert all(line.count("%") == 2 for line in lines)


def test_predict_names_a_file_it_cannot_read(tmp_path):
    bad = tmp_path / "not-a-picture.png"
    bad.write_text("hello")
    result = run_cli("predict", bad, "--model-file", RESULTS_DIR / "net")
    assert result.returncode == 2 and f"cannot read the image {bad}" in result.stderr
