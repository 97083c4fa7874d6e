"""Trainer tests: a module-wide client configured like a team member's (server URL, no S3 secrets)."""

from __future__ import annotations

import uuid

import pytest

from tests.services.seaweedfs import CHECKSUM_ENV


@pytest.fixture(scope="module")
def client(tracking_server):
    """An MlflowClient + global MLflow config pointing at the session's tracking server."""
    import mlflow

    patch = pytest.MonkeyPatch()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL",
                 "TRAINER_CONFIG_FILE"):
        patch.delenv(name, raising=False)
    for name, value in CHECKSUM_ENV.items():
        patch.setenv(name, value)
    patch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    patch.setenv("TRAINER_ACTOR", "pytest")
    mlflow.set_tracking_uri(tracking_server.url)
    yield mlflow.MlflowClient(tracking_uri=tracking_server.url)
    patch.undo()


@pytest.fixture(scope="module")
def names():
    """Per-module unique names (model names, experiments): tests share one server."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
