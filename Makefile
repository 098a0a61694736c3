# citygas — the two commands first: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-sqlite test-postgresql test-browser bench lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per dependency set: re-installs when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

## make run: install, migrate the embedded SQLite database, seed the demo, print logins, serve on :8000
run: install
	$(BIN)/citygas migrate
	$(BIN)/citygas demo seed --if-empty
	$(BIN)/citygas demo logins
	@echo "B2B API key for the demo CGD (vend and look-up scopes): $$($(BIN)/citygas demo api-key --scope vend --scope customers:read --scope meters:read)"
	$(BIN)/citygas serve

## make test: the whole suite on SQLite and on PostgreSQL, then the browser tests in headless Chromium
test: install-test
	scripts/test.sh

test-sqlite: install-test
	scripts/test.sh sqlite

test-postgresql: install-test
	scripts/test.sh postgresql

test-browser: install-test
	scripts/test.sh browser

## make bench: performance figures and ratios (medians)
bench: install-test
	$(BIN)/python bench/run.py

## make lint: ruff, mypy --strict, the import contract
lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
