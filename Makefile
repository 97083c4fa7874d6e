# Entry points people remember: up, down, logs, test, lint, bench.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up down logs status test lint bench train promote rollback venv env

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

env: $(STAMP)
	@$(PY) -m ops.envfile

up: $(STAMP)
	@$(PY) -m ops.stack up

down: $(STAMP)
	@$(PY) -m ops.stack down

logs: $(STAMP)
	@$(PY) -m ops.stack logs

status: $(STAMP)
	@$(PY) -m ops.stack status

train: $(STAMP)
	@$(PY) -m ops.stack run-trainer -- train $(ARGS)

promote: $(STAMP)
	@$(PY) -m ops.stack run-trainer -- promote $(ARGS)

rollback: $(STAMP)
	@$(PY) -m ops.stack run-trainer -- rollback $(ARGS)

test: $(STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	@$(VENV)/bin/ruff check .

bench: $(STAMP)
	@$(PY) bench/drift_speed.py
	@$(PY) bench/drift_quality.py
	@$(PY) bench/classification_quality.py
	@$(PY) bench/monitor_round.py
	@$(PY) bench/alert_latency.py
