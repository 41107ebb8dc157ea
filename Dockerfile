# syntax=docker/dockerfile:1
# One image for every AutoRetrain service: the Airflow components (api-server, scheduler,
# dag-processor, triggerer, celery worker), the MLflow tracking server and the prediction service.
# docker-compose.yaml builds it; docs/deploy.md explains the stack and the Helm values that reuse it.
# BASE_IMAGE: any Debian-like image with Python 3.11 and venv (default: the official slim image;
# `make test-compose` builds on a local debootstrap of bookworm, which ships Python 3.11).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG UV_VERSION=0.13.9

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_NATIVE_TLS=1 \
    GIT_PYTHON_REFRESH=quiet \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false \
    AIRFLOW_HOME=/opt/airflow \
    AUTORETRAIN_HOME=/opt/autoretrain \
    AIRFLOW_CONFIG=/opt/autoretrain/airflow.cfg \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Dependencies first, from the lock alone, so a code change does not reinstall them. A venv, so the
# same steps work on a base whose system Python is Debian's (externally managed, no pip).
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install "uv==${UV_VERSION}"
COPY requirements.lock /tmp/requirements.lock
RUN uv pip install --python /opt/venv/bin/python -r /tmp/requirements.lock && rm /tmp/requirements.lock

# uid 50000 / gid 0: the convention of the official Airflow image and Helm chart (uid: 50000, gid: 0).
# AIRFLOW_HOME holds what the services write (logs, the simple auth manager's passwords, local state);
# the project copy stays read-only.
RUN useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/auth /opt/airflow/state /opt/airflow/mlflow-auth \
    && chown -R 50000:0 /opt/airflow \
    && chmod -R g+rwX /opt/airflow

WORKDIR /opt/autoretrain
COPY . /opt/autoretrain
RUN uv pip install --python /opt/venv/bin/python --no-deps -e /opt/autoretrain

USER 50000
EXPOSE 8080 5000 8000
CMD ["autoretrain", "--help"]
