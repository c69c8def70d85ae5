# `make run`: set up .venv, install pinnrun and run the default job (Kovasznay, Adam and SOAP side by side).
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

# With no ARGS, the default job: Kovasznay flow trained with Adam and with SOAP side by side (a sweep
# of two runs, about 2 minutes on 2 cores), then their comparison (pinnrun-report's table). With ARGS,
# one run: `make run ARGS="pde=burgers optim=soap train=cpu_quick"`.
run: $(STAMP)
ifeq ($(strip $(ARGS)),)
	@sweep=multirun/$$(date +%Y-%m-%d/%H-%M-%S)_adam_vs_soap; \
	$(BIN)/pinnrun -m optim=adam,soap hydra.sweep.dir=$$sweep && \
	$(BIN)/pinnrun-report $$sweep > /dev/null && echo && cat $$sweep/report.md
else
	$(BIN)/pinnrun $(ARGS)
endif

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
