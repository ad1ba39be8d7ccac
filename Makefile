# Set-up and the main jobs. Each target creates .venv and installs what it needs.
# TORCH: the torch requirement installed first; the default is the CPU build pinned for this project's
# machines. On a GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lora_nb-installed

.PHONY: setup demo lab test quicktest lint nbtest jstest pytest browser export outputs bench tiny-base llamacpp
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
test: setup browser lint llamacpp
	$(BIN)/nbdev-test --n-workers 1 --timing
	cd extension && npm test -- --ci
	$(BIN)/python -m pytest -q tests

## llama.cpp (llama-cpp-python) for the tests that run exported GGUF files in it. PyPI has no binary wheel: it is built
## once, CPU only with portable flags (no -march=native: CI machines differ), into a wheel cache that later runs, and CI
## machines that keep ~/.cache, install from (measured: 8 min on 2 busy cores). Under `make test` those tests fail
## rather than skip when llama_cpp is missing (LORA_NB_REQUIRE_LLAMA_CPP, read by tests/conftest.py).
LLAMA_CPP_VERSION := 0.3.36
LLAMA_WHEELS ?= $(HOME)/.cache/lora_nb/wheels
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
	-DGGML_BUILD_EXAMPLES=OFF -DGGML_BUILD_TESTS=OFF
LLAMA_INSTALL := $(BIN)/python -m pip install -q --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) \
	llama-cpp-python==$(LLAMA_CPP_VERSION)
test: export LORA_NB_REQUIRE_LLAMA_CPP = 1

llamacpp: setup
	@$(BIN)/python -c "import llama_cpp as l, sys; sys.exit(l.__version__ != '$(LLAMA_CPP_VERSION)')" 2>/dev/null || \
	$(LLAMA_INSTALL) 2>/dev/null || { \
	echo "building llama-cpp-python $(LLAMA_CPP_VERSION) once into $(LLAMA_WHEELS) (CPU only; about 10 minutes)"; \
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-deps \
	--no-binary llama-cpp-python -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION) && $(LLAMA_INSTALL); }

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
