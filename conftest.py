"""Root pytest config: the notebooks run under nbval in their smoke configuration, headless.

MNIST_SMOKE=1 makes each notebook's settings shrink the run (a few thousand images, one epoch)
and write under smoke/, so `pytest` never retrains the full recipe or touches committed results.
MNIST_HEADLESS=1 draws plain figures where a reader would get sliders.
"""

import os

os.environ.setdefault("MNIST_SMOKE", "1")
os.environ.setdefault("MNIST_HEADLESS", "1")
