# The README's commands. Each target creates .venv if absent and installs the package into it.
# TORCH_SPEC is installed first so that pip does not pull a multi-GB CUDA build of torch;
# override it on a GPU machine, e.g. `make demo TORCH_SPEC=torch==2.11.0`.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup  # replaces the previous demo output
	rm -rf runs/demo
	$(BIN)/skillit-ray demo --out runs/demo

test: setup lint  # lint first: a style error fails in seconds, not after the suite
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check skillit_ray tests jobs
	$(BIN)/ruff format --check skillit_ray tests jobs

bench: setup
	$(BIN)/python -m skillit_ray.benchmarks throughput

clean:
	rm -rf $(VENV) runs .pytest_cache
