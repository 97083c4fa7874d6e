"""Dependencies going away during operation: failures are recorded, the process stays up, and it recovers."""

from __future__ import annotations

import mlflow
import sqlalchemy as sa

from tests.monitor.helpers import register_model
from tests.monitor.processes import rows, start_monitor, wait_for
from tests.services import postgres
from tests.services.process import http_ok
from tests.services.seaweedfs import CHECKSUM_ENV
from tests.services.tracking import start_tracking


def _status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _ok_after(db_url: str, last_id: int) -> bool:
    return bool(rows(db_url, "SELECT id FROM evaluations WHERE status = 'ok' AND id > :i", i=last_id))


def test_tracking_then_database_outage_is_recorded_survived_and_recovered(
        tmp_path, make_database, s3_server, monitor_db, unique_name, monkeypatch):
    tracking_db = make_database("mlflow")
    bucket = s3_server.make_bucket("private")
    tracking = start_tracking(tmp_path / "tracking", {
        "DRIFTLINE_MODE": "local", "TRACKING_BACKEND_URI": tracking_db,
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts", **s3_server.env,
    }, bucket=bucket, db_url=tracking_db)
    for key, value in CHECKSUM_ENV.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(tracking.url)
    name = unique_name("resilience")
    register_model(mlflow.MlflowClient(tracking.url), name, kind="identity")
    proc, url = start_monitor(tmp_path / "monitor", "monitor", db_url=monitor_db, tracking_url=tracking.url,
                              model=name, interval=1.0, workers=1)
    try:
        wait_for(lambda: _ok_after(monitor_db, 0), 60, "a first ok evaluation", proc)

        # Tracking server down: failures recorded with the reason, alive but not ready.
        tracking.stop()
        wait_for(lambda: rows(monitor_db, "SELECT id FROM evaluations WHERE status = 'failed' "
                                          "AND error LIKE '%tracking server%'"),
                 60, "a failed evaluation", proc)
        assert _status(f"{url}/healthz") == 200
        assert _status(f"{url}/readyz") == 503
        last = rows(monitor_db, "SELECT max(id) FROM evaluations")[0][0]
        tracking.start()
        wait_for(lambda: _ok_after(monitor_db, last), 90, "evaluations to resume after tracking returned",
                 proc)

        # Database down: nothing can be recorded, the process stays up and unready, then recovers.
        db_name = sa.make_url(monitor_db).database
        admin = sa.create_engine(postgres.ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": db_name})
        try:
            wait_for(lambda: _status(f"{url}/readyz") == 503, 30, "readyz to report the database", proc)
            assert http_ok(f"{url}/healthz") and proc.running
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
        last = rows(monitor_db, "SELECT max(id) FROM evaluations")[0][0]
        wait_for(lambda: _ok_after(monitor_db, last), 60, "evaluations to resume after the database returned",
                 proc)
        assert _status(f"{url}/readyz") == 200
    finally:
        proc.stop()
        tracking.stop()
