# The two README commands. Each bootstraps uv if missing, syncs the locked environment, then runs.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_ARGS ?=

.PHONY: demo test sync bench clean

$(UV):
	$(PYTHON) -m pip install --user --quiet uv

sync: $(UV)
	$(UV) sync --locked --quiet

demo: sync
	$(UV) run --locked clientlens demo

test: sync
	$(UV) run --locked pytest $(PYTEST_ARGS)

bench: sync
	$(UV) run --locked python -m benchmarks.run_all

clean:
	rm -rf .clientlens .pytest_cache
