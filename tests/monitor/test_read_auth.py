"""Team login for reads: in production the dashboard and the read API need the credentials the
tracking server's basic-auth accepts (checked against a real MLflow server with auth on), or a read
token; health stays open, metrics may take their own token, writes still need the API token."""

from __future__ import annotations

import base64

import pytest
import requests

from monitor.settings import MonitorSettings
from tests.monitor.conftest import API_TOKEN
from tests.services.process import free_port
from tests.services.tracking import start_tracking

ADMIN_PASSWORD = "a-long-random-admin-password"
READ_TOKEN = "read-token-0123456789abcdef"
METRICS_TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture(scope="module")
def auth_tracking(session_dir, make_database, s3_server):
    bucket = s3_server.make_bucket("readauth")
    server = start_tracking(session_dir / "tracking-readauth", {
        "DRIFTLINE_MODE": "production", "TRACKING_BACKEND_URI": make_database("mlflow"),
        "TRACKING_AUTH_DB_URI": make_database("mlflow_auth"),
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts", "TRACKING_AUTH": "true",
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "0123456789abcdef0123456789abcdef", **s3_server.env,
    }, bucket=bucket)
    # A team member, added the way an admin does it: MLflow's user API.
    resp = requests.post(f"{server.url}/api/2.0/mlflow/users/create", auth=("admin", ADMIN_PASSWORD),
                         json={"username": "alice", "password": "alice-team-password-1"}, timeout=10)
    assert resp.status_code == 200, resp.text
    yield server
    server.stop()


def _app(db_url: str, tracking_url: str, **extra: str):
    from monitor.app import create_app

    return create_app(MonitorSettings.model_validate({
        "DRIFTLINE_MODE": "production", "MONITOR_DATABASE_URL": db_url, "MLFLOW_TRACKING_URI": tracking_url,
        "MONITOR_API_TOKEN": API_TOKEN, "MONITOR_SCHEDULER": "false", "MONITOR_SOURCE": "push", **extra}))


@pytest.fixture
def production_app(monitor_db, auth_tracking):
    app = _app(monitor_db, auth_tracking.url, MONITOR_READ_TOKEN=READ_TOKEN)
    yield app
    app.extensions["driftline"].close()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/api/models", "/", "/alerts", "/api/alerts", "/api/missed-slots"])
def test_reads_without_a_login_are_refused_with_a_basic_challenge(production_app, path):
    resp = production_app.test_client().get(path)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_health_readiness_and_metrics_stay_open(production_app):
    client = production_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)  # answered, not refused
    assert client.get("/metrics").status_code == 200


def test_team_credentials_the_tracking_server_accepts_can_read_and_are_cached(production_app):
    client = production_app.test_client()
    login = production_app.extensions["driftline_login"]
    assert client.get("/api/models", headers=_basic("alice", "wrong-password-123")).status_code == 401
    before = login.checks
    assert client.get("/api/models", headers=_basic("alice", "alice-team-password-1")).status_code == 200
    assert client.get("/", headers=_basic("alice", "alice-team-password-1")).status_code == 200
    assert client.get("/api/models", headers=_basic("admin", ADMIN_PASSWORD)).status_code == 200
    assert login.checks == before + 2  # alice's second read came from the cache


def test_read_token_and_api_token_work_as_bearer_tokens(production_app):
    client = production_app.test_client()
    for token in (READ_TOKEN, API_TOKEN):
        assert client.get("/api/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/models", headers={"Authorization": "Bearer not-the-token"}).status_code == 401


def test_a_write_with_only_the_team_login_is_refused(production_app):
    """What a cross-site form could make a logged-in browser send: the login, never the bearer token."""
    resp = production_app.test_client().post(
        "/api/silences", headers=_basic("alice", "alice-team-password-1"),
        json={"matchers": [{"name": "model", "value": "m"}], "endsAt": "2099-01-01T00:00:00Z",
              "createdBy": "x", "comment": "y"})
    assert resp.status_code == 401


def test_metrics_token_guards_metrics_when_set(monitor_db, auth_tracking):
    app = _app(monitor_db, auth_tracking.url, MONITOR_METRICS_TOKEN=METRICS_TOKEN)
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
    finally:
        app.extensions["driftline"].close()


def test_login_cannot_be_checked_while_the_tracking_server_is_down(monitor_db):
    app = _app(monitor_db, f"http://127.0.0.1:{free_port()}")
    try:
        resp = app.test_client().get("/api/models", headers=_basic("alice", "alice-team-password-1"))
        assert resp.status_code == 503 and "tracking server" in resp.get_json()["error"]
    finally:
        app.extensions["driftline"].close()


def test_local_mode_stays_open(make_app):
    assert make_app().test_client().get("/api/models").status_code == 200
