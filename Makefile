# The README's two commands: `make run` and `make test`. Each makes .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck contracts unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.py
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python setup.py
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/nua-orchestrator start --foreground

lint: $(VENV)/.installed-test
	$(BIN)/ruff check nua tests bench setup.py

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]): layers read one way.
contracts: $(VENV)/.installed-test
	$(BIN)/lint-imports --no-cache

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest

test: lint typecheck contracts unit

BENCHMARKS := restart db_writer rpc lifecycle reads hostile audit services events

bench: $(VENV)/.installed-test
	for name in $(BENCHMARKS); do $(BIN)/python bench/$$name.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
