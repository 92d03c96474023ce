# skyquilt: `make demo` and `make test` create the environment themselves.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON_BASE ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install test check lint demo fidelity bench bench-scale bench-gpu bench-gpu-wheels clean

# (Re)install when the venv is missing or pyproject.toml changed since the last install.
# pip byte-compiles at install on purpose: where PYTHONDONTWRITEBYTECODE is set (as in CI), a
# venv without .pyc files recompiles torch and friends in every job's process, ~9 s each.
$(STAMP): pyproject.toml tests/support/pyproject.toml
	test -x $(PYTHON) || $(PYTHON_BASE) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet --editable '.[test]' --editable tests/support
	touch $@

install: $(STAMP)

lint: $(STAMP)
	ruff check .
	ruff format --check .
	lint-imports
	snakefmt --check Snakefile rules
	snakemake --lint

# The suite runs on PYTEST_WORKERS pytest-xdist workers, a whole module per worker at a time (its
# fixtures built once), the live SLURM tests first, beside the CPU-bound tests, since they mostly
# wait on the cluster (tests/conftest.py). Two more workers than cores keep the cores busy while
# they wait. The 15 slowest tests are listed at the
# end, so that a new slow test is seen when it comes.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 2 )))
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

test: lint
	pytest $(PYTEST_PARALLEL)

# The inner loop: lint and the unit tests, in a few minutes.
check: lint
	pytest $(PYTEST_PARALLEL) tests/unit

demo: $(STAMP)
	snakemake --cores all

# Rebuild the shipped demo weights from scratch (train the autoencoder and the denoiser on the
# dataset built here) and write them, with the dataset's fingerprint, to
# src/skyquilt/demo/pretrained. `make demo` uses them whenever its dataset has that fingerprint.
demo-train: $(STAMP)
	snakemake --cores all --configfile config/config.yaml config/demo-train.yaml \
		--forcerun demo_autoencoder -- demo_export

# Composed trajectories vs single blankets of the configured model (decodes and evaluates first).
fidelity: $(STAMP)
	snakemake --cores all fidelity

# Every CPU benchmark, at the settings of config/config.yaml (another: make bench CONFIG=path).
CONFIG ?= config/config.yaml
bench: $(STAMP)
	$(PYTHON) benchmarks/run_all.py --config $(CONFIG)

# The GPU measurement (BENCHMARKS.md, "GPU"): every number in one run, 4 to 7 minutes on one
# H100. A rehearsal anywhere: make bench-gpu GPU_DEVICE=cpu GPU_FLAGS=--quick
GPU_DEVICE ?= cuda
GPU_FLAGS ?=
bench-gpu: $(STAMP)
	$(PYTHON) benchmarks/gpu.py --device $(GPU_DEVICE) --config $(CONFIG) $(GPU_FLAGS)

# Wheels for making the environment on a GPU machine without a package registry
# (benchmarks/gpu_machine.sh runs bench-gpu there), for its Python (GPU_PYTHON).
GPU_PYTHON ?= 3.12
bench-gpu-wheels: $(STAMP)
	$(PYTHON) benchmarks/gpu_wheels.py --python-version $(GPU_PYTHON)

# The 256-member ensemble end to end, stage by stage (BENCHMARKS.md, "Scale: 256 members").
bench-scale: $(STAMP)
	nice -n 10 $(PYTHON) benchmarks/scale_run.py

clean:
	rm -rf .snakemake results
