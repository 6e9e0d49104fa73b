# Broker's developer and CI entry points; CI runs `make test` (see .ci/run).
#
#   make run     start a node on http://127.0.0.1:8080/ (BROKER_PORT=... to move it)
#   make test    lint, type-check, then the test suite
#   make check   validate .crossbar/config.json without starting a node

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# present once the project is installed into the venv; redone when pyproject.toml changes
STAMP := $(VENV)/.installed

.PHONY: venv run lint test check clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[node,test]'
	touch $(STAMP)

run: venv
	$(BIN)/broker run

lint: venv
	$(BIN)/ruff check broker tests
	$(BIN)/ruff format --check broker tests
	$(BIN)/mypy broker

test: venv lint
	$(BIN)/python -m pytest

check: venv
	$(BIN)/broker check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache broker.egg-info .crossbar/run
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
