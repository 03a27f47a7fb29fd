# The two README commands. Each bootstraps uv if missing, syncs the locked environment, then runs.
SHELL := /bin/bash
PYTHON ?= python3
# uv: the one on PATH if there is one, else a copy that `make sync` bootstraps into .uv/ (pip --target works
# where pip refuses `--user` and system installs, as Debian's python3 does under PEP 668), else the uv that pip
# installed into $(PYTHON) (run as `python -m uv`). Expanded at each use (`=`): the copy may appear mid-run.
UV_HOME := .uv
UV = $(or $(shell command -v uv 2>/dev/null),$(wildcard $(UV_HOME)/bin/uv),$(PYTHON) -m uv)
PYTEST_ARGS ?=
# Two pytest-xdist workers: LightGBM trains on one thread per process (training/tune.py `lgb_threads`), so one
# serial run left a core idle most of the time. Units of work and their order: tests/conftest.py.
# `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
XDIST = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: demo test test-fast check sync uv clean

# A separate target so that sync's recipe is expanded after uv is there.
uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(UV_HOME) uv

sync: uv
	$(UV) sync --locked --quiet

demo: sync
	$(UV) run --locked clientlens demo

# Lint, format and type checks: ruff and mypy over the whole tree (settings in pyproject.toml).
check: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy

# Everything CI runs: the checks, then every test (unit, data, property, model, slow end-to-end).
test: check
	$(UV) run --locked pytest $(XDIST) $(PYTEST_ARGS)

# The fast lane while you work: ruff, then the tests not marked slow (under 3 minutes here).
test-fast: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf .clientlens .pytest_cache $(UV_HOME)
