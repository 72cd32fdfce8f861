"""Sliders where a person is reading the notebook (Jupyter, Colab); a plain figure where it is
executed headless (papermill, nbval), so that the saved notebook shows the figure."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

HEADLESS_ENV = "MNIST_HEADLESS"  # set by the notebook chain and by the tests


def is_headless() -> bool:
    return os.environ.get(HEADLESS_ENV, "") not in ("", "0")


def explore(draw: Callable[..., Any], **sliders: tuple[float, float, float, float]) -> Any:
    """``draw(**values)`` with a slider per keyword, (min, max, step, initial); headless, or
    without ipywidgets, the figure for the initial values."""
    initial = {name: spec[3] for name, spec in sliders.items()}
    if is_headless():
        return draw(**initial)
    try:
        import ipywidgets
        from IPython.display import display
    except ImportError:
        return draw(**initial)
    controls = {
        name: ipywidgets.FloatSlider(value=v, min=lo, max=hi, step=step, continuous_update=False)
        for name, (lo, hi, step, v) in sliders.items()
    }
    ipywidgets.interact(lambda **values: display(draw(**values)), **controls)
    return None
