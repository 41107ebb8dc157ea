# AutoRetrain — `make demo` runs the main job, `make test` runs every test. Both set up what they need.
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

export AUTORETRAIN_HOME := $(ROOT)
export AIRFLOW_HOME := $(ROOT)/.autoretrain/airflow
export AIRFLOW_CONFIG := $(ROOT)/airflow.cfg
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
# no process of AutoRetrain unpickles a model: MLflow's own loaders refuse to (ADR 0007)
export MLFLOW_ALLOW_PICKLE_DESERIALIZATION := false

.PHONY: setup test test-compose test-unit lint demo up down status validate serve bench-training bench-serving bench-drift-quality bench-drift-speed bench-minimum-samples bench-modelops clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: $(STAMP)  ## .venv from requirements.lock, the package (editable), AutoRetrain's database migrated, AIRFLOW_HOME

MIGRATIONS := $(wildcard include/autoretrain/db/migrations/versions/*.py)

$(STAMP): requirements.lock pyproject.toml tools/airflow_home.py $(MIGRATIONS)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) venv --allow-existing --seed --python 3.11 $(VENV)
	$(UV) pip install -q --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	$(VENV)/bin/autoretrain db upgrade  # the checkout's database (settings database_url; empty: .autoretrain/autoretrain.db)
	$(PY) tools/airflow_home.py
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(VENV)/bin/airflow dags reserialize > $(AIRFLOW_HOME)/dags-reserialize.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/dags-reserialize.log; exit 1)
	@touch $(STAMP)

# test files run on TEST_WORKERS pytest-xdist workers, whole files per worker (--dist loadfile: a module's
# fixtures, servers and order stay as they are); each worker is its own session (own Airflow DB, mlflow
# server, tmp folders). Much of an integration test is waiting on servers and task processes, so two
# workers on 2 cores cut the wall time. TEST_WORKERS=0: one process, as before.
TEST_WORKERS ?= 2

test: setup  ## every test: unit, DAG integrity, integration (real Postgres, mlflow server, Airflow)
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile --ignore=tests/compose

# podman, not Docker: these machines have no Docker engine (docs/deploy.md, "Verified in containers")
COMPOSE_APT := podman runc debootstrap catatonit netavark aardvark-dns

test-compose: setup  ## docker-compose.yaml in containers (podman): image, closed loop, faults; figures as one JSON line
	@command -v podman >/dev/null 2>&1 || (echo "installing $(COMPOSE_APT)" && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(COMPOSE_APT) >/dev/null)
	$(UV) pip install -q --python $(PY) -r tools/compose/requirements.txt
	$(PY) -m pytest tests/compose -q -p no:cacheprovider
	@tail -n 1 .autoretrain/compose/figures.json

test-unit: setup  ## fast tests only (no servers)
	$(PY) -m pytest tests/unit tests/dags -q

lint: setup  ## ruff (with Airflow 3 AIR3 and the no-heavy-imports-in-DAGs TID253 rules), then mypy on include/
	$(VENV)/bin/ruff check include dags plugins tests benchmarks tools
	$(VENV)/bin/mypy

demo: setup  ## the closed loop on embedded defaults: train, serve, drift, monitoring, retrain, promote (~6 min on 2 cores)
	$(PY) tools/demo.py

up: setup  ## start the native stack (MLflow, Airflow components, prediction service) without the simulation
	$(PY) tools/stack.py up

down:  ## stop the stack that `make up` / `make demo` started (Airflow task processes included)
	@if [ -x $(PY) ]; then $(PY) tools/stack.py down; fi

status:  ## which processes of the stack run
	@$(PY) tools/stack.py status

serve: setup  ## prediction service on models:/<model_name>@champion (AUTORETRAIN_SERVING_HOST/PORT, default 127.0.0.1:8000)
	$(VENV)/bin/autoretrain serve

bench-serving: setup  ## this service vs `mlflow models serve` on the same model: table + one JSON line
	$(PY) benchmarks/bench_serving.py

bench-drift-quality: setup  ## drift detection and false alarms on SMS scenarios: table + one JSON line
	$(PY) benchmarks/bench_drift_quality.py

bench-drift-speed: setup  ## drift suite vs Evidently DataDriftPreset on a 1M-message window, one core
	$(PY) benchmarks/bench_drift_speed.py

validate: setup  ## dataset checks on the configured source (exit 1 on a blocking failure)
	$(VENV)/bin/autoretrain validate

bench-minimum-samples: setup  ## learning curve behind the minimum_samples default (ADR 0002)
	$(PY) benchmarks/bench_minimum_samples.py

bench-modelops: setup  ## Model Ops page data on Postgres (10k windows, 1k versions, 1M predictions) vs naive Python: table + one JSON line
	$(PY) benchmarks/bench_modelops.py

bench-training: setup  ## full model sweep on the bundled data: table + one JSON line
	$(PY) benchmarks/bench_training.py

clean:  ## remove local state (keeps .venv)
	rm -rf .autoretrain $(STAMP)
