"""Fixtures of the alerts tests: a migrated PostgreSQL database per test, local receivers, one real
Alertmanager per session, and a helper recording evaluations the way the evaluation service does."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.alerts.config import AlertConfig, Receiver
from monitor.alerts.engine import AlertEngine
from monitor.db import make_engine, make_session_factory, utcnow
from tests.services.alertmanager import Alertmanager, start_alertmanager
from tests.services.receiver import Receiver as HttpReceiver

_batch = itertools.count(1)


def migrate(url: str) -> None:
    """The monitor's own migration step (`python -m monitor migrate`): 0001_monitor, then 0002_alerts."""
    from monitor.migrate import upgrade

    upgrade(url)


@pytest.fixture
def db_url(make_database) -> str:
    url = make_database("alerts")
    migrate(url)
    return url


@pytest.fixture
def sessions(db_url: str) -> Iterator:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def am_receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alertmanager(session_dir: Path, am_receiver: HttpReceiver) -> Iterator[Alertmanager]:
    server = start_alertmanager(session_dir / "alertmanager", f"{am_receiver.url}/am")
    yield server
    server.stop()


def alert_config(receiver: HttpReceiver | None = None, alertmanager: Alertmanager | None = None,
                 **overrides: Any) -> AlertConfig:
    receivers = []
    if receiver is not None:
        receivers.append(Receiver("webhook", "webhook", SecretStr(f"{receiver.url}/webhook")))
        receivers.append(Receiver("slack", "slack", SecretStr(f"{receiver.url}/slack")))
    if alertmanager is not None:
        receivers.append(Receiver("alertmanager", "alertmanager", SecretStr(alertmanager.url)))
    receivers.append(Receiver("log", "log"))
    defaults: dict[str, Any] = {
        "receivers": tuple(receivers), "public_url": "http://monitor.test",
        "mlflow_public_url": "http://mlflow.test", "delivery_interval": timedelta(seconds=1),
        "backoff_base": timedelta(seconds=1), "backoff_max": timedelta(seconds=8), "http_timeout": 2.0,
    }
    defaults.update(overrides)
    return AlertConfig(**defaults)


def verdict(kind: str = "clean", **fields: Any) -> dict[str, Any]:
    """Evaluation fields of a batch: clean, data_drift, concept_drift, degraded, rejected, failed."""
    base: dict[str, Any] = {
        "status": "ok", "error": None, "data_drift": False, "concept_drift": False,
        "prediction_drift": False, "drifted_features": [], "n_rows": 500, "mse": 1.0, "mae": 0.8,
        "baseline_mse": 1.0, "baseline_mae": 0.8, "report": {"quality_failed": False},
        "mlflow_run_id": "run123",
    }
    if kind == "data_drift":
        base.update(data_drift=True, drifted_features=["x0"], report={
            "quality_failed": False,
            "features": {"x0": {"ks": {"test": "ks", "statistic": 0.62, "p_value": 1e-12, "drift": True,
                                       "adjusted_drift": True}}},
            "quality": {"x0": {"mean": 75.3, "reference_mean": 50.1, "issues": []}}})
    elif kind == "concept_drift":
        base.update(concept_drift=True, mse=3.2)
    elif kind == "degraded":
        base.update(mse=2.0)
    elif kind == "rejected":
        base.update(status="rejected", error="data quality: column x1 missing", data_drift=None,
                    concept_drift=None, mse=None, mae=None)
    elif kind == "failed":
        base.update(status="failed", error="TrackingUnavailable: tracking down", data_drift=None,
                    concept_drift=None, mse=None, mae=None, mlflow_run_id=None)
    base.update(fields)
    return base


@pytest.fixture
def record(sessions) -> Callable[..., int]:
    """Insert an Evaluation row and run the alert listener in the same transaction (as the service does)."""
    from monitor.models import Evaluation

    def record_evaluation(engine: AlertEngine, model: str, kind: str = "clean", *, version: str = "1",
                          now: datetime | None = None, **fields: Any) -> int:
        with sessions() as session, session.begin():
            row = Evaluation(model_name=model, model_version=version, alias="champion",
                             batch_id=f"batch-{next(_batch)}", source="push", scenario=kind,
                             started_at=utcnow(), finished_at=utcnow(), **verdict(kind, **fields))
            session.add(row)
            session.flush()
            engine.on_evaluation(session, row, now=now)
            return row.id

    return record_evaluation


TOKEN = "alerts-test-token-0123456789"


@pytest.fixture
def monitor_app(db_url: str, receiver: HttpReceiver) -> Iterator[Any]:
    """The monitor's own app (create_app) on the migrated database, scheduler off, receivers local."""
    from monitor.app import create_app
    from monitor.settings import MonitorSettings

    settings = MonitorSettings(**{
        "DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": db_url, "MONITOR_SCHEDULER": "false",
        "MONITOR_API_TOKEN": TOKEN, "MONITOR_PUBLIC_URL": "http://monitor.test",
        "MLFLOW_PUBLIC_URL": "http://mlflow.test", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "ALERT_WEBHOOK_URL": f"{receiver.url}/webhook", "ALERT_SLACK_WEBHOOK_URL": f"{receiver.url}/slack",
        "ALERT_DELIVERY_INTERVAL_SECONDS": "1",
    })
    app = create_app(settings)
    yield app
    app.extensions["driftline"].close()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
