"""Root pytest config: the notebooks run under nbval in their smoke configuration.

MNIST_SMOKE=1 makes each notebook's settings shrink the run (a few thousand images, one epoch)
and write under smoke/, so `pytest` never retrains the full recipe or touches committed results.
"""

import os

os.environ.setdefault("MNIST_SMOKE", "1")
