"""Experiments around the course: seed sweeps, the ablation, the design search, the benchmark,
and the README's results table."""
