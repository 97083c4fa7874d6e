# Driftline: one image recipe for the three services. A shared `base` stage holds Python, the locked
# dependencies and the project; each service is a target of its own (docker-compose.yml builds
# `tracking`, `trainer`, `monitor`), so all three share every dependency layer by construction.
# Build context: the repository root.
#   docker build --target monitor -t driftline-monitor .
# Behind a TLS-intercepting proxy, hand pip the extra CA as a build secret; it is used for the
# install step only and never lands in a layer:
#   docker build --secret id=build_ca,src=/path/to/company-ca.pem --target monitor .
# (compose: BUILD_CA_FILE in .env). The base image is a variable so a mirror or a local stand-in
# can take its place (ops/standins/).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    # MLflow 3 phones home unless told not to; compose and local mode pass the same two variables,
    # so a team that wants telemetry sets them to false in .env.
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true

RUN groupadd --system --gid 10001 driftline \
    && useradd --system --uid 10001 --gid driftline --create-home --home-dir /home/driftline \
        --shell /usr/sbin/nologin driftline \
    && python3 -m venv /opt/venv

# Every transitive dependency, pinned with hashes (requirements/*.lock, `make lock` refreshes them):
# the same versions `make up` and `make test` install, plus the build back-end for the project
# itself. The optional CA is appended to pip's own bundle for this step only.
COPY requirements/runtime.lock requirements/build.lock /tmp/
RUN --mount=type=secret,id=build_ca,required=false \
    if [ -s /run/secrets/build_ca ]; then \
        cat /opt/venv/lib/python3.11/site-packages/pip/_vendor/certifi/cacert.pem /run/secrets/build_ca \
            > /tmp/pip-ca.pem && export PIP_CERT=/tmp/pip-ca.pem; \
    fi \
    && pip install --quiet --require-hashes --no-deps -r /tmp/runtime.lock -r /tmp/build.lock \
    && rm -f /tmp/pip-ca.pem /tmp/runtime.lock /tmp/build.lock \
    # The libraries' own test suites (pandas, scipy, numpy, pyarrow, ...: about 200 MB) never run here.
    && find /opt/venv/lib/python3.11/site-packages -type d -name tests -prune -exec rm -rf {} +

WORKDIR /opt/driftline
COPY pyproject.toml README.md ./
COPY seed_scenarios/ seed_scenarios/
COPY tracking/ tracking/
COPY model_registry/ model_registry/
COPY trainer/ trainer/
COPY monitor/ monitor/
# The project itself from its own files, as a wheel would install it: the code runs from
# site-packages, never from the copied sources (a wheel missing its templates fails here too).
RUN pip install --quiet --no-deps --no-build-isolation . \
    && rm -rf /opt/driftline

# The working directory is writable runtime state only (the basic-auth ini under .driftline/).
WORKDIR /app
RUN chown 10001:10001 /app
# The unprivileged driftline user, by number (Kubernetes runAsNonRoot can check it).
USER 10001:10001


FROM base AS tracking
EXPOSE 5000
# Slim images have no curl: probe /health (exempt from MLflow's Host-header check) with urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRACKING_PORT', '5000') + '/health', timeout=3)"]
ENTRYPOINT ["python", "-m", "tracking"]


# One-shot: `docker compose run --rm trainer promote --model NAME --version N`.
FROM base AS trainer
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "trainer"]
CMD ["train"]


FROM base AS monitor
EXPOSE 8000
# Liveness (/healthz); readiness with its dependencies is /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MONITOR_PORT', '8000') + '/healthz', timeout=3)"]
ENTRYPOINT ["python", "-m", "monitor"]
CMD ["serve"]
