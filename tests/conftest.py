"""Session-wide real services: each server starts once; each test gets its own names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import postgres
from tests.services.browser import launch_chromium
from tests.services.seaweedfs import S3Server, start_s3_server
from tests.services.tracking import TrackingServer, configure_team_client, start_tracking


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def pg_available() -> None:
    postgres.check_server()


@pytest.fixture(scope="session")
def make_database(pg_available: None) -> Iterator:
    """Factory: a fresh PostgreSQL database URL, dropped when the session ends."""
    created: list[str] = []

    def make(prefix: str = "dl") -> str:
        url = postgres.create_database(prefix)
        created.append(url)
        return url

    yield make
    for url in created:
        postgres.drop_database(url)


@pytest.fixture(scope="session")
def s3_server(session_dir: Path) -> Iterator[S3Server]:
    server = start_s3_server(session_dir / "seaweedfs")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tracking_server(session_dir: Path, make_database, s3_server: S3Server) -> Iterator[TrackingServer]:
    """The team tracking server as deployed: PostgreSQL store, S3 artifacts proxied, auth off."""
    db_url = make_database("mlflow")
    bucket = s3_server.make_bucket("mlflow")
    settings = {
        "DRIFTLINE_MODE": "local",
        "TRACKING_BACKEND_URI": db_url,
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts",
        **s3_server.env,
    }
    server = start_tracking(session_dir / "tracking", settings, bucket=bucket, db_url=db_url)
    yield server
    server.stop()


@pytest.fixture
def mlflow_client(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch):
    """A client configured like a team member's: the server URL and nothing about S3."""
    return configure_team_client(monkeypatch, tracking_server.url)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest):
    """Factory for per-test names (model names, experiments, buckets)."""

    def make(prefix: str | None = None) -> str:
        base = prefix or request.node.name.split("[")[0].replace("test_", "")[:30]
        return f"{base}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright; one per session."""
    with launch_chromium() as browser:
        yield browser
