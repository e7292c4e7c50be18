# critix: `make run` trains the default agent; `make test` runs the tests; `make docs` builds the documentation site.
# Each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
UV_VERSION ?= 0.13.9
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(abspath $(BIN)/python)

# The main job: SAC on Pendulum-v1, 2 seeds trained together, progress bar, run folder, final evaluation.
RUN_ARGS ?= sac --env Pendulum-v1 --steps 10000 --num-seeds 2 --learning-starts 1000 --eval-every 2500 --run-dir runs/make-run

.PHONY: run test test-all install install-test install-docs docs lock bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(BIN)/uv
	$(BIN)/uv sync --frozen --inexact --quiet
	touch $@

$(VENV)/.installed-test: pyproject.toml uv.lock | $(BIN)/uv
	$(BIN)/uv sync --frozen --inexact --quiet --extra test
	touch $@ $(VENV)/.installed

$(VENV)/.installed-docs: pyproject.toml uv.lock | $(BIN)/uv
	$(BIN)/uv sync --frozen --inexact --quiet --extra docs
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-docs: $(VENV)/.installed-docs

run: install
	rm -rf runs/make-run
	$(BIN)/critix train $(RUN_ARGS)

# CI subset: everything but tests marked `slow`.
test: install-test
	$(BIN)/python -m pytest -q --durations=15

# Every test, slow learning tests included.
test-all: install-test
	$(BIN)/python -m pytest -q -m "" --durations=25

# The documentation site (mkdocs.yml, docs/, the API reference from docstrings) into site/. Strict: a warning
# (a broken link or anchor, a page missing from the nav, a docstring griffe cannot read) fails the build.
# (NO_MKDOCS_2_WARNING: Material's banner about its end of life, printed on every build; it is no build warning.)
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lock: | $(BIN)/uv
	$(BIN)/uv lock

bench: install
	$(BIN)/python benchmarks/sac_speed.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache site
