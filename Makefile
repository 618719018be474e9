# Two commands for a newcomer:  `make demo`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-tools lint format services-up services-down flower api worker bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## Install Recflow and its tools into .venv
setup: $(STAMP)

## Run the main job end to end on the embedded defaults (SQLite, SQLite broker, local Spark)
demo: setup
	$(BIN)/recflow demo

## Start PostgreSQL, Redis and Kafka locally, then run the whole suite against them
test: setup services-up test-tools
	eval "$$(bash scripts/services.sh env)" && RECFLOW_REQUIRE_SERVICES=1 \
		$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

## The suite without real services (what needs them is skipped)
test-unit: setup
	$(BIN)/pytest -p no:cacheprovider -m "not integration" $(PYTEST_ARGS)

## Exactly what CI runs for style and types
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy backend workers
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-tools:
	bash scripts/test-tools.sh

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

## Flower on http://127.0.0.1:5555 (sees the workers when the broker is Redis)
flower: setup
	$(BIN)/recflow flower

api: setup
	$(BIN)/recflow api

worker: setup
	$(BIN)/recflow worker

## Benchmarks print one JSON line each; they need `make services-up` for the Redis figures
bench: setup services-up
	eval "$$(bash scripts/services.sh env)" && $(BIN)/python bench/jobs.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
