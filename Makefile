# Two commands from a fresh clone: `make run` (demo) and `make test` (whole suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NODE_RP := tests/e2e/node
NODE_STAMP := $(NODE_RP)/node_modules/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test install node bench messages clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

node: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_RP)/package-lock.json
	cd $(NODE_RP) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Sets up everything (venv, the CJK font for seal images, database, keys, demo data) and starts the hub
# with two demo subsites.
run: $(STAMP)
	bash deploy/ensure-packages.sh fonts-noto-cjk
	$(PY) -m clients.demo

# Sets up and runs the whole suite; under CI=true, tests needing a missing service fail, never skip.
test: $(STAMP) node
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

# Lists every message without a Simplified Chinese translation, as .po entries to paste (exit 1 if any).
messages: $(STAMP)
	$(PY) -m idp.i18n_check

clean:
	rm -rf $(VENV) instance $(NODE_RP)/node_modules .pytest_cache
