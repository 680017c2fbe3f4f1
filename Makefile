# Every target makes .venv and installs what it needs: a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
BENCH_STAMP := $(VENV)/.installed-bench

MIN_VENV := .venv-min

.PHONY: docs translations catalogs demo test test-min test-matrix lint bench soak install clean e2e screenshots chromium spamassassin

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[redis,test,dev,docs]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[redis,test,dev,docs,bench]'
	touch $@

install: $(STAMP)

# The demo needs the package and its runtime dependencies only; pip shows its progress.
$(DEMO_STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e .
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/flask --app example_app run --debug

# The catalogs of the flask_postmark_auth domain: `make translations` extracts the messages
# from the source (pybabel extract), merges them into every locale's .po and compiles;
# `make catalogs` compiles only (the .mo files are built, never committed).
translations: $(STAMP)
	$(BIN)/python -m support.catalogs extract
	$(MAKE) catalogs

catalogs: $(STAMP)
	$(BIN)/python -m support.catalogs compile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict flask_postmark_auth
	$(BIN)/mypy --strict tests bench example_app support
	$(BIN)/bandit -q -r flask_postmark_auth
	$(BIN)/python -m pip check

# The docs site, docs/_build/html: every warning is an error.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint catalogs docs
	$(BIN)/pytest

# The suite (less browser and multi-process tests) on the lowest versions setup.cfg allows.
test-min:
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/min_requirements.py setup.cfg > $(MIN_VENV)/floor.txt
	$(MIN_VENV)/bin/python -m pip install --quiet -c $(MIN_VENV)/floor.txt -e '.[redis,test]'
	$(MIN_VENV)/bin/python -m pip check
	$(MIN_VENV)/bin/python -m pip list | grep -iE '^(flask|flask-login|flask-wtf|itsdangerous|requests|urllib3|email.validator|redis) '
	$(MIN_VENV)/bin/pytest -p no:cacheprovider -m 'not browser and not reliability'

# The whole suite on every CPython the project supports, each in a venv of its own
# (.venv-3.X), with the interpreters this machine has (pyenv's; never downloaded).
MATRIX ?= 3.10 3.11 3.12 3.13
test-matrix:
	@set -e; for version in $(MATRIX); do \
	  if ! python=$$(.ci/python_for $$version); then \
	    if [ "$$CI" = true ]; then exit 1; fi; \
	    echo "== CPython $$version: not on this machine, skipped (CI fails instead)"; continue; \
	  fi; \
	  venv=.venv-$$version; \
	  echo "== CPython $$version: $$python"; \
	  test -x $$venv/bin/python || $$python -m venv $$venv; \
	  $$venv/bin/python -m pip install --quiet --upgrade pip; \
	  $$venv/bin/python -m pip install --quiet -e '.[redis,test]'; \
	  $$venv/bin/python -m pytest -p no:cacheprovider -q; \
	done

# The browser tests alone (headless Chromium, tests/e2e).
e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

# PNGs of the demo for the README, written to docs/screenshots/.
screenshots: $(STAMP)
	$(BIN)/python -m tests.e2e.screenshots

# Debian's Chromium (browser tests) and SpamAssassin (email score), when missing (root).
chromium spamassassin:
	@if command -v $@ >/dev/null 2>&1; then \
	  echo "$@ is installed: $$(command -v $@)"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "$@ is missing: run 'sudo make $@' (apt-get needs root)" >&2; exit 1; \
	else \
	  DEBIAN_FRONTEND=noninteractive apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y $@; \
	fi

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# 30 minutes of mixed sign-ins on two gunicorn instances sharing Redis (not part of bench).
SOAK_MINUTES ?= 30
soak: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) $(MIN_VENV) .venv-3.* *.egg-info .mypy_cache .ruff_cache .pytest_cache
