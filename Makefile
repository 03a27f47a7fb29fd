# The two README commands. Each bootstraps uv if missing, syncs the locked environment, then runs.
SHELL := /bin/bash
PYTHON ?= python3
# uv on PATH if there is one, else the uv that pip installs into $(PYTHON) (run as `python -m uv`).
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
PYTEST_ARGS ?=

.PHONY: demo test sync clean

sync:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv 2>/dev/null || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --locked --quiet

demo: sync
	$(UV) run --locked clientlens demo

test: sync
	$(UV) run --locked pytest $(PYTEST_ARGS)

clean:
	rm -rf .clientlens .pytest_cache
