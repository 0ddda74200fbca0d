# batch-translate — every task a target; CI runs the same ones (.ci/run → make test).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: demo test lint format typecheck bench image services clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The runtime extras (API, workers, the retrain core that builds the demo model).
$(VENV)/.runtime: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[api,worker,retrain]'
	touch $@

# Everything, test tools included.
$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev]'
	touch $(VENV)/.runtime $@

services:
	bash scripts/services.sh --postgres

demo: $(VENV)/.runtime services  ## Train the demo model once, run API + workers, translate a job end to end
	$(PY) -m scripts.demo

test: $(VENV)/.dev services  ## The whole test suite against real RabbitMQ, PostgreSQL and MLflow
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

bench: $(VENV)/.dev services  ## End-to-end benchmark (issue 6): table on stdout, JSON in bench/results/latest.json
	$(PY) -m bench $(BENCH_ARGS)

IMAGE_TAG ?= $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

image:  ## Build the api, worker, delivery and retrain images (needs Docker with BuildKit)
	for target in api worker delivery retrain; do \
	  docker build --target $$target -t batch-translate-$$target:$(IMAGE_TAG) . || exit 1; \
	done

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
