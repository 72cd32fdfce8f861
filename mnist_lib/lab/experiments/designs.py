"""The search for a network under 5,000 parameters: candidate designs written as short layer specs.

A spec is a space-separated list of layers, each followed by BatchNorm and ReLU where it has
weights:

    Cn  3x3 convolution to n channels, padding 1 (size kept)
    cn  3x3 convolution to n channels, no padding (size - 2)
    tn  1x1 convolution to n channels (a transition)
    Dn  depthwise-separable 3x3 (a 3x3 per channel, then a 1x1 to n channels), padding 1
    dn  the same without padding
    sn  depthwise-separable as dn, with BatchNorm and ReLU after the 3x3 as well (MobileNet's)
    fn  dn with a 5x5 per channel instead of the 3x3, no padding (size - 4)
    rn  dn with a shortcut: its input, cropped to the output's size, added before the ReLU
        (ResNet's; no weights of its own, so the input must already have n channels)
    p   2x2 max-pool
    a   the unpadded c or d layer right before it (pools aside) again: the same convolution
        weights (no new ones), its own BatchNorm (deeper, not bigger; channels in = out)
    en  squeeze-and-excitation (SENet's) on the channels it is given, n hidden units: each
        channel scaled by a gate in (0, 1) that a two-layer net computes from all channels'
        averages (no BatchNorm; size and channels kept)

A spec that starts with ``silu`` uses SiLU (x * sigmoid(x)) wherever the others use ReLU. Every
design ends in global average pooling and one ``Linear(channels, 10)``, unless its last
token is

    k   a depthwise convolution over the whole remaining map, one output per channel (its
        channels must be the 10 classes): the logits, each class's own spatial template
"""

import torch
import torch.nn.functional as F
from torch import nn

# Each candidate that was trained on the validation split (results/design-search).
DESIGNS: dict[str, str] = {
    "design-a": "C8 C8 p c12 c12 p C12",
    "design-b": "C8 C10 p c12 c12 p C12",
    "design-c": "C8 C8 p c10 c12 p C12",
    "design-d": "C8 C12 p t8 c12 c12 p C12",
    "design-e": "C8 C16 p d16 d16 d16 d16",
    "design-f": "C8 C16 p d16 d16 d24 d24",
    "design-g": "C8 C16 p d16 d16 p D24 D24",
    "design-h": "C8 C16 p d24 d24 d24 d24",
    "design-i": "C8 C16 p d20 d20 d20 d20",
    "design-j": "C8 C16 p D16 d16 d16 d16 d16",
    "design-m": "C8 C16 p d16 d24 d24 d32",
    "design-n": "C8 C16 p d20 d20 d20 d20 D20",
    "design-o": "C8 C16 p s24 s24 s24 s24",
    "design-p": "C8 C16 p d24 d24 d24 d32",
    "design-q": "C8 C12 p d24 d24 d24 d24",
    "design-r": "C8 D16 p d28 d28 d28 d28",
    "design-s": "C8 D24 p d28 d28 d28 d28",
    "design-t": "C8 D16 p D24 d24 d24 d24 d24",
    "design-u": "C8 C16 p d25 d25 d25 d25",
    "design-v": "C8 C16 p D24 D24 D24 D24",
    "design-w": "C8 C19 p d24 d24 d24 d24",
    "design-x": "C10 C16 p d24 d24 d24 d24",
    "design-y": "C8 C20 p d24 d24 d24 d22",
    "design-z": "C8 C16 p d24 d24 d24 d24 t10 k",
    "design-wr": "C8 C19 p d24 r24 r24 r24",
    "design-r5": "C8 C16 p d22 r22 r22 r22 r22",
    "design-ws": "silu C8 C19 p d24 d24 d24 d24",
    "design-he": "C8 C16 p d24 d24 d24 e3 d24 e3",
    "design-wl": "C8 C19 d24 p d24 d24 d24",
    "design-k1": "C8 C19 p d28 d28 a d28 a",
    "design-k2": "C8 C16 p d32 d32 a a a",
    "design-k3": "C8 C16 p d40 d40 a a a",
    "design-k4": "C8 C19 p d36 d36 a a a",
    "design-f3": "C8 C16 p f24 f24 f24",
    "design-f1": "C8 C16 p f24 d24 d24 d24",
    "design-tiny": "C8 C12 p t8 c12 c16 t8 c16 c16",  # TinyNet's layout, as a reference
}


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}


def spec_layer(kind: str, c_in: int, c_out: int, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    """One spec token's layer (see the module docstring)."""
    if kind == "p":
        return nn.MaxPool2d(2, 2)
    if kind == "e":
        return SqueezeExcite(c_in, c_out, act())
    padding = 1 if kind.isupper() else 0
    if kind in "tT":
        convs = [nn.Conv2d(c_in, c_out, 1, bias=False)]
    elif kind in "cC":
        convs = [nn.Conv2d(c_in, c_out, 3, padding=padding, bias=False)]
    elif kind == "r":
        if c_in != c_out:
            raise ValueError(f"a shortcut needs as many channels in as out, got {c_in} -> {c_out}")
        return Shortcut(spec_layer("d", c_in, c_out)[:-1], act())
    elif kind in "dDf":
        kernel = 5 if kind == "f" else 3
        convs = [
            nn.Conv2d(c_in, c_in, kernel, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        ]
    elif kind in "sS":
        convs = [
            nn.Conv2d(c_in, c_in, 3, padding=padding, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            act(),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        ]
    else:
        raise ValueError(f"unknown layer {kind!r} in a design spec")
    return nn.Sequential(*convs, nn.BatchNorm2d(c_out), act())


def again(layers: list[nn.Module], channels: int, act: type[nn.Module]) -> nn.Module:
    """The last layer in ``layers`` but pools and dropout, which must be an unpadded ``c`` or
    ``d`` (or an ``a`` of one), with its convolutions shared and a BatchNorm of its own."""
    blocks = [layer for layer in layers if not isinstance(layer, nn.Dropout2d | nn.MaxPool2d)]
    last = blocks[-1] if blocks else None
    convs = list(last)[:-2] if isinstance(last, nn.Sequential) else []  # less BatchNorm and act
    if (
        not convs
        or not all(isinstance(conv, nn.Conv2d) for conv in convs)
        or convs[0].kernel_size != (3, 3)
        or convs[0].padding != (0, 0)
    ):
        raise ValueError("'a' repeats an unpadded c or d layer: put one before it")
    if convs[0].in_channels != channels or convs[-1].out_channels != channels:
        raise ValueError(f"'a' repeats a layer of {channels} channels in and out only")
    return nn.Sequential(*convs, nn.BatchNorm2d(channels), act())


class Shortcut(nn.Module):
    """``act``(``block``(x) + x cropped to the block's output), for an unpadded 3x3 ``block``."""

    def __init__(self, block: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.block, self.act = block, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.block(x) + x[:, :, 1:-1, 1:-1])


class SqueezeExcite(nn.Module):
    """x scaled per channel by sigmoid(up(``act``(down(the channel averages of x)))), with
    ``hidden`` units between: a gate that lets what the whole map holds weigh each channel."""

    def __init__(self, channels: int, hidden: int, act: nn.Module) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1)
        self.act = act
        self.up = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.up(self.act(self.down(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class SpecNet(nn.Module):
    """A network built from a spec (see the module docstring)."""

    def __init__(self, spec: str, dropout: float = 0.0) -> None:
        super().__init__()
        tokens = spec.split()
        act = ACTIVATIONS[tokens.pop(0)] if tokens[0] in ACTIVATIONS else nn.ReLU
        templates = tokens[-1] == "k"
        layers, channels, size = [], 1, 28
        for token in tokens[:-1] if templates else tokens:
            out = int(token[1:]) if token[1:] else channels
            if token[0] == "a":
                if token != "a":
                    raise ValueError(f"'a' takes no number (it keeps its layer's), got {token!r}")
                layers.append(again(layers, channels, act))
            else:
                layers.append(spec_layer(token[0], channels, out, act))
            if dropout and token[0] not in "pe":
                layers.append(nn.Dropout2d(dropout))
            channels = channels if token[0] == "e" else out  # e's number: its hidden units
            shrink = {"c": 2, "d": 2, "s": 2, "r": 2, "a": 2, "f": 4}.get(token[0], 0)
            size = size // 2 if token == "p" else size - shrink
        self.features = nn.Sequential(*layers)
        if templates:
            if channels != 10:
                raise ValueError(f"'k' needs the 10 classes as channels, got {channels}")
            self.templates = nn.Conv2d(10, 10, size, groups=10)
        else:
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.dense = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if hasattr(self, "templates"):
            logits = self.templates(x).flatten(1)
        else:
            logits = self.dense(self.gap(x).flatten(1))  # (B, channels) -> (B, 10)
        return F.log_softmax(logits, dim=1)
