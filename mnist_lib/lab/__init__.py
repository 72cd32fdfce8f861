"""The lab: what produced the evidence behind the course, kept apart from it.

- `speed`: the same numbers as `mnist_lib.fit.fit`, faster (threads on a CPU, CUDA graphs and
  several seeds in one step on a GPU)
- `experiments`: seed sweeps, the ablation, the design search, the benchmark, the results table
- `notebooks`: the papermill chain that executes the notebooks, and their Colab cells

`python -m mnist_lib.lab` is its command line. Importing `experiments.variants` (which the
command line does) registers the lab's models (the ablation's variants, MicroNet, the design
search's candidates) with the course's registry.
"""
