"""mnist_lib: the small library behind the MNIST-under-15k-parameters notebooks.

The course, in the notebooks' order, one module per idea:

- `data`, `augment`: MNIST as tensors, and random moves of a whole batch (notebook 01)
- `model`, `layers`: the networks, and their layers' shapes and receptive fields (02)
- `config`, `train`, `fit`: the recipe, the training loop, and the loop with its files (03)
- `record`, `plot`, `plot_model`: a run's history and target, and the figures (04, 05)
- `device`, `files`, `handwriting`: where it runs, files written whole, your own digits

`python -m mnist_lib` is the command line. The lab (seed sweeps, ablation, design search,
benchmarks, the faster training paths, the notebook chain) is `mnist_lib.lab`: it imports the
course, and the course never imports it.
"""
