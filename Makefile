# Two commands for a fresh clone: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Pipeline steps run `python3` from PATH (kfp.local SubprocessRunner), so the venv goes first.
export PATH := $(BIN):$(PATH)
export RAY_AUTH_MODE := disabled
export GX_ANALYTICS_ENABLED := false
export BENTOML_DO_NOT_TRACK := true
export FEAST_USAGE := False
STAMP := $(VENV)/.installed-stamp
TYPECHECK := build/typecheck

.PHONY: install demo test test-fast lint format bench bench-gpu gpu-wheels components clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first: the pinned CPU build is on this machine's disk; an unpinned resolve pulls CUDA.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	searchrank demo

# checkov in a venv of its own: its pinned dependencies clash with the ML stack's.
CHECKOV := .venv-checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet "checkov==3.3.30"

# The whole suite, after lint: the import contracts guard the layers as much as the tests do.
# Two processes, each taking whole files: most tests wait on a server or run one-threaded
# Python, so a serial run leaves one of two cores idle most of the time.
test: lint $(CHECKOV)
	pytest -n 2 --dist loadfile

# The unit tier, under a minute: tests/core and tests/features without the tests marked slow
# (the feast CLI and UI, the generator's memory bound) or services (Redis, PostgreSQL, S3).
test-fast: install
	pytest tests/core tests/features -m "not slow and not services"

# mypy cannot follow setuptools' editable finder, so it reads the package through a link tree.
lint: install
	ruff check .
	ruff format --check .
	mkdir -p $(TYPECHECK)/searchrank
	for p in core components pipelines features serving; do ln -sfn $(CURDIR)/$$p $(TYPECHECK)/searchrank/$$p; done
	MYPYPATH=$(TYPECHECK) mypy -p searchrank.core -p searchrank.components -p searchrank.pipelines -p searchrank.features -p searchrank.serving
	lint-imports

format: install
	ruff check --fix .
	ruff format .

# The benchmarks this machine can run; the GPU ones are bench-gpu's. bench_text_encoder needs
# the text-encoder extra (torch pinned again so the resolve keeps the CPU build).
bench: install
	$(BIN)/python -m pip install --quiet torch==2.13.0 -e ".[dev,text-encoder]"
	@for bench in tests/benchmarks/bench_*.py; do \
		case $$bench in *_gpu.py) continue;; esac; \
		echo "== $$bench"; python $$bench $(BENCH_ARGS) || exit 1; done

# Every GPU check in one call, on the accelerator machine (README, "GPU checks"); it carries
# the wheels gpu-wheels writes to .whl/ (git-ignored).
bench-gpu:
	bash tests/benchmarks/bench_gpu.sh

gpu-wheels:
	bash ../shared/gpu/ray-wheels.sh 2.60.0 .whl

components: install
	searchrank components compile

clean:
	rm -rf $(VENV) .venv-checkov build .searchrank features/data
