"""Monitor fixtures: a migrated per-test database, settings, an app, and registered models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.migrate import upgrade
from monitor.settings import MonitorSettings
from tests.monitor.helpers import register_model

API_TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def monitor_db(make_database) -> str:
    url = make_database("monitor")
    upgrade(url)
    return url


def settings_for(db_url: str, tracking_url: str, **extra: Any) -> MonitorSettings:
    values = {"DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": db_url, "MLFLOW_TRACKING_URI": tracking_url,
              "MONITOR_API_TOKEN": API_TOKEN, "MONITOR_SCHEDULER": "false", "MONITOR_SOURCE": "simulated",
              **{k: str(v) for k, v in extra.items()}}
    return MonitorSettings.model_validate(values)


@pytest.fixture
def make_app(monitor_db: str, tracking_server) -> Iterator[Callable[..., Any]]:
    """Factory: a monitor app on this test's database and the session tracking server."""
    from monitor.app import create_app

    apps = []

    def make(db_url: str | None = None, tracking_url: str | None = None, **extra: Any):
        app = create_app(settings_for(db_url or monitor_db, tracking_url or tracking_server.url, **extra))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["driftline"].close()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def champion(mlflow_client, unique_name) -> str:
    """A LinearRegression registered under a per-test name with the champion alias; returns the name."""
    name = unique_name()
    register_model(mlflow_client, name)
    return name
