# Set-up and the main jobs. Each target creates .venv and installs what it needs.
# TORCH: the torch requirement installed first; the default is the CPU build pinned for this project's
# machines. On a GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lora_nb-installed

.PHONY: setup demo lab test quicktest lint nbtest jstest pytest browser export outputs bench tiny-base
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# the JupyterLab extension, rebuilt when its sources change (pip's build hook builds it the first time); `develop`
# links the environment's copy to the rebuilt one
LABEXT := lora_nb/labextension/package.json
$(LABEXT): extension/package.json $(wildcard extension/src/*.ts extension/style/*) | $(STAMP)
	cd extension && PATH="$(abspath $(BIN)):$$PATH" npm run build:prod
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter labextension develop --overwrite .

setup: $(STAMP) $(LABEXT)

## the main job: the offline demo on the embedded model
demo: setup
	$(BIN)/lora-nb demo

## JupyterLab with lora_nb installed
lab: setup
	$(BIN)/jupyter lab --notebook-dir=nbs

## all tests: the style check, notebooks (nbdev-test), the frontend's unit tests (jest), then pytest (incl. the slow
## and browser tests)
test: setup browser lint
	$(BIN)/nbdev-test --n-workers 1 --timing
	cd extension && npm test -- --ci
	$(BIN)/python -m pytest -q tests

## the quick loop: style, then pytest without the slow and browser tests (a few minutes)
quicktest: setup lint
	$(BIN)/python -m pytest -q -m "not slow and not browser" tests

## the house style: ruff (no `;` chains, lines <= 120) on notebooks and Python; eslint and prettier on the extension
lint: setup
	$(BIN)/ruff check .
	cd extension && npm run lint

## Debian's Chromium for the browser test (apt; Playwright drives it, no browser download)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

jstest: setup
	cd extension && npm test -- --ci

nbtest: setup
	$(BIN)/nbdev-test --n-workers 1 --timing

pytest: setup
	$(BIN)/python -m pytest -q tests

## regenerate the package and README from the notebooks, and clean the notebooks
export: setup
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/python tools/readme.py

## keep small, stable outputs in the notebooks for readers (runs each notebook twice)
outputs: setup
	$(BIN)/python tools/outputs.py
	$(BIN)/nbdev-clean

bench: setup
	$(BIN)/python bench/run.py

## re-train the embedded tiny base model (about 15 minutes on 2 cores)
tiny-base: setup
	cd nbs && ../$(BIN)/jupyter nbconvert --to notebook --execute 90_tiny_base.ipynb --output /tmp/90_tiny_base.out.ipynb --ExecutePreprocessor.timeout=-1
