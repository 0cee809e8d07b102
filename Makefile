# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The versions CI tested, for every package of `.[dev]`; `make lock` regenerates it.
CONSTRAINTS := constraints.txt
LOCK_VENV := .venv-lock

.PHONY: run test test-fast lint reliability bench lock clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tcwebhook dev

test: $(STAMP)
	$(BIN)/pytest

# Everything but the tests marked slow (the reliability, deployment, ACME, browser and end-to-end
# delivery suites, and single long tests): the tier to run while working.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

reliability: $(STAMP)
	$(BIN)/pytest -m reliability tests/reliability

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Rewrites constraints.txt from a fresh venv of `.[dev]`. Pins already in the file are kept (a new
# dependency gets its current version, a dropped one disappears); `make lock UPGRADE=1` resolves
# everything afresh to the newest versions.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet $(if $(UPGRADE),,-c $(CONSTRAINTS)) -e '.[dev]'
	{ echo "# Versions CI tested, installed by the Makefile with pip -c. Regenerate: make lock (see README)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
