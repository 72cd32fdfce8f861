"""Root pytest config: the notebooks are checked by nbval in their smoke configuration.

Each notebook in notebooks/ is copied to smoke/nbval/ with the smoke values of its parameters
injected after its parameters cell, as `python -m mnist_lib.lab run --smoke` injects them (a few
thousand images, one epoch, files written under smoke/), and nbval runs the copy as
``--nbval-lax`` would: only cells tagged ``nbval-check-output`` must print what is saved. The
kernels import this checkout, whatever an editable install points to.
"""

import os
from pathlib import Path

from nbval.plugin import IPyNbFile

ROOT = Path(__file__).resolve().parent
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


class SmokeNotebook(IPyNbFile):
    """A notebook of notebooks/, run from its smoke copy and compared as ``--nbval-lax`` does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.compare_outputs = False

    def collect(self):
        from mnist_lib.lab.notebooks.chain import smoke_copy
        from mnist_lib.lab.paths import SMOKE_DIR

        self.path = smoke_copy(self.path, SMOKE_DIR / "nbval")  # the kernel starts beside it
        return super().collect()


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".ipynb" and file_path.parent == ROOT / "notebooks":
        return SmokeNotebook.from_parent(parent, path=file_path)
    return None
