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

# A development run: every file under ./.run/ in the checkout (pid file, runtime record, database, keys,
# services' output), on any free loopback port (its runtime record says which), so it never collides
# with a daemon installed on the host (/run/nua, /var/lib/nua, port 5001) nor with another checkout.
# bin/nua and bin/nua-orchestrator of this checkout use .run/nua.toml when NUA_CONFIG is not set.
RUN_DIR := $(CURDIR)/.run

$(RUN_DIR)/nua.toml:
	mkdir -p $(RUN_DIR) && chmod 700 $(RUN_DIR)
	printf '%s\n' '# make run: a development daemon whose files are all in this directory (edit at will).' \
	  '[server]' 'pid_file = "$(RUN_DIR)/nua-orchestrator.pid"' 'exit_flag = "$(RUN_DIR)/nua-orchestrator.exit"' \
	  'log_file = "$(RUN_DIR)/nua-orchestrator.log"' \
	  '[zmq]' 'port = 0' 'keys_dir = "$(RUN_DIR)/keys"' 'client_key = "$(RUN_DIR)/client.key_secret"' \
	  '[db]' 'url = "sqlite:///$(RUN_DIR)/nua.db"' > $@

run: $(VENV)/.installed $(RUN_DIR)/nua.toml
	@echo "make run: a development daemon in the foreground (Ctrl-C stops it); its files are in $(RUN_DIR)/"
	@echo "make run: its settings are $(RUN_DIR)/nua.toml; in another shell: bin/nua status"
	$(BIN)/nua-orchestrator --config $(RUN_DIR)/nua.toml start --foreground

lint: $(VENV)/.installed-test
	$(BIN)/ruff check nua nua_orchestrator.py tests bench setup.py

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]): layers read one way.
contracts: $(VENV)/.installed-test
	$(BIN)/lint-imports --no-cache

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest

test: lint typecheck contracts unit

BENCHMARKS := restart db_writer rpc lifecycle reads hostile audit services events http

bench: $(VENV)/.installed-test
	for name in $(BENCHMARKS); do $(BIN)/python bench/$$name.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .run
