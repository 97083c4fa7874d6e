# Entry points people remember: up, down, restart, logs, status, test, test-containers, lint, bench.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every transitive dependency pinned with hashes; `make lock` refreshes them from pyproject.toml.
LOCKS := requirements/dev.lock requirements/build.lock
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes
# Tools whose pins conflict with ours get a venv of their own: checkov (the Kubernetes manifests'
# security linter) needs packaging<24, our stack packaging 26.
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: up down restart logs status test test-containers lint bench train promote rollback venv env lock standins tools

$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --require-hashes $(addprefix -r ,$(LOCKS))
	@$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

$(CHECKOV_STAMP): requirements/checkov.lock
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/checkov.lock
	@touch $(CHECKOV_STAMP)

tools: $(CHECKOV_STAMP)

# Re-resolve the locks after changing pyproject.toml's pins (needs the package index).
lock: $(STAMP)
	@$(UV_COMPILE) pyproject.toml --extra dev -o requirements/dev.lock
	@$(UV_COMPILE) pyproject.toml -c requirements/dev.lock -o requirements/runtime.lock
	@$(UV_COMPILE) requirements/build.in -c requirements/dev.lock --no-emit-package packaging \
		-o requirements/build.lock
	@$(UV_COMPILE) requirements/checkov.in -o requirements/checkov.lock
	@echo "make lock: requirements/{dev,runtime,build,checkov}.lock refreshed"

env: $(STAMP)
	@$(PY) -m ops.envfile

up: $(STAMP)
	@$(PY) -m ops.stack up

down: $(STAMP)
	@$(PY) -m ops.stack down

restart: $(STAMP)
	@$(PY) -m ops.stack restart

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

# Local stand-ins for base images when no container registry answers (ops/standins/).
standins: $(STAMP)
	@$(PY) -m ops.standins

test: $(STAMP) $(CHECKOV_STAMP)
	@$(PY) -m ops.system_packages tests
	@$(PY) -m pytest $(PYTEST_ARGS)

# The real docker-compose.yml and Dockerfile on a Docker engine (started here when none runs).
test-containers: $(STAMP)
	@$(PY) -m ops.system_packages containers
	@$(PY) -m pytest -m containers -s tests/containers $(PYTEST_ARGS)

lint: $(STAMP)
	@$(VENV)/bin/ruff check .

bench: $(STAMP)
	@$(PY) bench/drift_speed.py
	@$(PY) bench/drift_quality.py
	@$(PY) bench/classification_quality.py
	@$(PY) bench/monitor_round.py
	@$(PY) bench/alert_latency.py
