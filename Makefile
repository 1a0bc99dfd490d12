# Shortcuts for the commands in CONTRIBUTING.md. The README's two set-up commands stay the way
# to start on a fresh machine; these are for working on the code.
PYTHON ?= python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install lint test-fast test bench-quick bench

install:
	bash docker/install.sh

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	hadolint docker/Dockerfile.cpu docker/Dockerfile.gpu

test-fast:
	$(PYTHON) -m pytest -m "not slow" -q

test:
	$(PYTHON) -m pytest

bench-quick:
	$(PYTHON) -m bench.reliability --quick

bench:
	$(PYTHON) -m bench.embedder_bench
	$(PYTHON) -m bench.ingest_bench
	$(PYTHON) -m bench.reliability
