# yuqing — every target sets itself up: a fresh machine needs only Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo test lint browser bench bench-quick train clean help

help:
	@echo "make demo   - set up and run the whole service on the local demo web"
	@echo "make test   - set up and run lint, the layering check and the tests"
	@echo "make bench  - run every benchmark and write bench/results.json"
	@echo "make train  - retrain the shipped NLP models from ../shared/data"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "yuqing needs Python >= 3.11, found " + sys.version)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/yuqing demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint browser
	$(BIN)/python -m pytest

# Debian's chromium for the browser test (tests/browser); without it (no root,
# no apt) that one test is skipped with a message saying how to install it.
browser:
	@bash tests/browser/install_chromium.sh || echo "make: chromium unavailable; the browser test will be skipped"

bench: install
	$(BIN)/python -m bench.run

bench-quick: install
	$(BIN)/python -m bench.run --quick

train: install
	$(BIN)/python -m nlp.train

clean:
	rm -rf var/demo .pytest_cache build *.egg-info
