# matdisco: two commands.  `make reproduce` regenerates every figure on the `tiny` profile;
# `make test` lints, checks notebooks == library, runs the notebook tests and pytest.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= tiny
RUN_ID ?= $(PROFILE)
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: install test lint export-check nbtest pytest reproduce readme docs wheelhouse datapack gpu-run node-rehearsal bench lock clean dft

install: $(STAMP)

ifdef WHEELHOUSE
# Offline, for an air-gapped node: `make install WHEELHOUSE=dir` (a folder made by `make wheelhouse`). An existing
# $(VENV) is completed, else one is made that sees the interpreter's own packages (the node's torch, numpy, ...);
# then exactly the wheelhouse's pins, with no index and no dependency resolution (a lean wheelhouse leaves optional
# packages out), and matdisco itself. Runtime only: enough for `make reproduce`, not for `make test`.
$(STAMP): $(WHEELHOUSE)/requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3,11),(3,12)), f"matdisco needs Python 3.11 or 3.12, found {sys.version}"'
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install --isolated --quiet --no-index --no-deps --find-links $(WHEELHOUSE) -r $(WHEELHOUSE)/requirements.txt
	$(BIN)/python -m pip install --isolated --quiet --no-index --no-deps --no-build-isolation --find-links $(WHEELHOUSE) .
	$(BIN)/python -c 'import matdisco.runner, torch; print("matdisco", matdisco.__version__, "on torch", torch.__version__)'
	touch $(STAMP)
else
# torch first and pinned: any newer torch pulls several GB of CUDA wheels; 2.13.0 resolves to the CPU wheel.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2]==(3,11), f"matdisco needs Python 3.11, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)
endif

export-check: install
	@.ci/check-export $(BIN)

# ruff (settings in pyproject.toml): lint lib/, the notebooks, tests and benchmarks; their code is ruff-formatted
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check nbs tests bench

nbtest: install
	$(BIN)/nbdev_test --n_workers 2 --timing

# pytest-xdist: $(PYTEST_WORKERS) worker processes (one per core on CI's two), each starting with its share of the tests
# and an idle one taking over part of another's queue (worksteal); each worker's torch and BLAS on one thread so the
# workers do not oversubscribe the cores; the slowest tests are listed at the end.
PYTEST_WORKERS ?= 2
pytest: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest tests/ -q -n $(PYTEST_WORKERS) --dist worksteal --durations=15

test: lint export-check nbtest pytest

reproduce: install
	$(BIN)/matdisco run --profile $(PROFILE) --out runs/$(RUN_ID)

# README.md from nbs/index.ipynb, its headline table rendered from the committed reference results (cpu first, then
# tiny); a test fails when README.md differs from this render.
readme: install
	$(BIN)/matdisco report --readme README.md > /dev/null

# The docs site, offline: the notebooks rendered by Sphinx + myst-nb into _docs/html (front page nbs/index.ipynb;
# the executed experiment notebooks of runs/$(RUN_ID) when `make reproduce` has run), every link and image checked.
docs: install
	$(BIN)/matdisco docs --out _docs $(if $(wildcard runs/$(RUN_ID)/stages),--run runs/$(RUN_ID))

# Wheels for an air-gapped node (Python $(PYTHON_VERSION)) into $(WHEELHOUSE_DIR): matdisco's locked runtime closure
# minus what the node already holds ($(HAVE)), unused weights, test data and optional packages left out (FULL=1 keeps
# the optional ones). For the H200 node (Python 3.12): 56.4 MiB, measured 2026-12-04 (90.7 MiB with FULL=1).
PYTHON_VERSION ?= 3.12
HAVE ?= .ci/h200-packages.txt
WHEELHOUSE_DIR ?= wheelhouse
wheelhouse: install
	$(BIN)/python .ci/wheelhouse --python-version $(PYTHON_VERSION) --have $(HAVE) --out $(WHEELHOUSE_DIR) $(if $(FULL),--full)

# Real DFT (GPAW 26.7.0 + libxc 7.0.0, serial) for matdisco.validation: not part of `make test`; the tests that need it
# skip with the reason where it is absent. Builds once into .dft/ (about 2-6 min), then only checks.
DFT_PREFIX := .dft
# The air-gapped GPU node, in two calls on one warm machine (at most 64 MiB travels with each): first
# `make install WHEELHOUSE=wheelhouse` with wheelhouse/ carried (made here by `make wheelhouse PYTHON_VERSION=3.12
# HAVE=.ci/h200-packages.txt`), then `make gpu-run` with data/ carried (filled here by `make datapack`: every data set
# with a mirror copy, verified by its sha256; about 54 MB). gpu-run uses the installed venv as it is (no index there),
# runs GPU_PROFILE into runs/GPU_PROFILE and writes GPU_OUT: the manifest, the run log and results.tar.gz (results
# files, figures, per-stage times), each under 16 MiB.
GPU_PROFILE ?= gpu
GPU_OUT ?= runs/$(GPU_PROFILE)-out
datapack: install
	$(BIN)/matdisco data fetch --offline $$($(BIN)/python -c 'from matdisco.data import REGISTRY, mirror_dir; m = mirror_dir(); print(" ".join(n for n in REGISTRY if m is not None and (m / n).is_dir()))')
	@du -sh --exclude=cache data | sed 's/^/data pack: /'

gpu-run:
	@test -x $(BIN)/matdisco || { echo "gpu-run: no $(VENV) here; first: make install WHEELHOUSE=<wheelhouse folder>"; exit 1; }
	$(BIN)/python -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "NO CUDA: running on CPU")'
	MATDISCO_MIRROR= $(BIN)/matdisco run --profile $(GPU_PROFILE) --out runs/$(GPU_PROFILE); status=$$?; \
	  $(BIN)/python .ci/gpu-archive runs/$(GPU_PROFILE) $(GPU_OUT); exit $$status

# The node, rehearsed here before spending its minutes: a Python 3.12 environment holding the node's own packages (torch
# 2.11.0+cu130, numpy 2.5.2, ...; about 5 GB of downloads), then in a clean clone of HEAD `make install WHEELHOUSE=...`
# with no index, `make datapack` and `make gpu-run GPU_PROFILE=$(REHEARSAL_PROFILE)` on a cold cache, on the CPU. Into
# $(REHEARSAL_DIR) (kept: a second call reuses the environment). Measured 2026-12-06: smoke in 19.5 min on 2 cores.
REHEARSAL_PROFILE ?= smoke
REHEARSAL_DIR ?= runs/node-rehearsal
node-rehearsal: install
	GPU_PROFILE=$(REHEARSAL_PROFILE) bash .ci/node-rehearsal $(REHEARSAL_DIR)

dft: install
	PREFIX=$(DFT_PREFIX) VENV=$(VENV) CONSTRAINTS=constraints.txt bash .ci/install-dft

bench: install
	for b in neighbors gnn screening ddp candidates oracle cluster; do $(BIN)/python bench/$$b.py || exit 1; done

lock: install
	{ head -2 constraints.txt; echo "torch==2.13.0"; $(BIN)/pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.tmp && mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) runs _proc $(DFT_PREFIX)
