# `make run`: set up .venv, install pinnrun and run the default job (a short Kovasznay training).
# `make test`: set up .venv and run the test suite (what CI runs).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/pinnrun $(ARGS)

# The suite runs on TEST_WORKERS processes (pytest-xdist; CI's machine has 2 cores).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info outputs multirun
