"""The tracking service, started through its real entrypoint (`python -m tracking`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services.process import ManagedProcess, free_port, http_ok
from tests.services.seaweedfs import CHECKSUM_ENV

REPO = Path(__file__).resolve().parents[2]
# Variables a developer's shell may carry that would change what the server or its clients do.
_SCRUB = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "TRACKING_",
          "AWS_", "MLFLOW_S3_", "MLFLOW_AUTH_", "DRIFTLINE_", "MONITOR_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(extra)
    env["PYTHONPATH"] = str(REPO)
    return env


@dataclass
class TrackingServer:
    url: str
    port: int
    env: dict[str, str]
    process: ManagedProcess
    bucket: str | None = None
    db_url: str | None = None

    def start(self, timeout: float = 90.0) -> TrackingServer:
        self.process = ManagedProcess(self.process.name, self.process.argv, self.process.log_path,
                                      env=self.env, cwd=REPO).start()
        self.process.wait_until(lambda: http_ok(f"{self.url}/health"), timeout=timeout, what="healthy")
        return self

    def stop(self) -> None:
        self.process.stop()


def tracking_env(workdir: Path, port: int, **settings: str) -> dict[str, str]:
    return clean_env(
        DRIFTLINE_DATA_DIR=str(workdir), TRACKING_HOST="127.0.0.1", TRACKING_PORT=str(port),
        TRACKING_WORKERS="1", TRACKING_DB_WAIT_SECONDS="20", **settings,
    )


def start_tracking(workdir: Path, settings: dict[str, str], *, bucket: str | None = None,
                   db_url: str | None = None, timeout: float = 90.0) -> TrackingServer:
    port = free_port()
    env = tracking_env(workdir, port, **settings)
    proc = ManagedProcess("tracking", [sys.executable, "-m", "tracking"], workdir / "tracking.log", env=env,
                          cwd=REPO)
    server = TrackingServer(f"http://127.0.0.1:{port}", port, env, proc, bucket=bucket, db_url=db_url)
    return server.start(timeout=timeout)


def configure_team_client(mp: pytest.MonkeyPatch, tracking_url: str):
    """Point MLflow's client at the server like a team member's: its URL and nothing about S3."""
    import mlflow

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        mp.delenv(name, raising=False)
    for name, value in CHECKSUM_ENV.items():
        mp.setenv(name, value)
    mp.setenv("MLFLOW_TRACKING_URI", tracking_url)
    mlflow.set_tracking_uri(tracking_url)
    return mlflow.MlflowClient(tracking_uri=tracking_url)
