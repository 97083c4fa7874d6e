"""Dependency outages against real services: the monitor says so (``dependency_down``), records the
slots it could not evaluate, catches up, and says when the dependency is back.

Each test starts its own tracking server (it is killed), its own HTTP receivers (they are stopped)
and the monitor as ``python -m monitor serve`` (gunicorn). Figures printed with ``-s`` are the ones
the operations report quotes.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import mlflow
import pytest
import sqlalchemy as sa

from tests.monitor.helpers import register_model
from tests.monitor.processes import rows, start_monitor, wait_for
from tests.services import postgres
from tests.services.receiver import Receiver
from tests.services.seaweedfs import CHECKSUM_ENV
from tests.services.tracking import TrackingServer, start_tracking

DOWN_AFTER = 4.0  # MONITOR_DEPENDENCY_DOWN_AFTER_SECONDS in these tests (default 120)


def _slack_notices(receiver: Receiver, dependency: str, state: str = "") -> list[dict]:
    return [b for b in receiver.bodies("/slack") if f"{state}: dependency_down ({dependency})" in b["text"]]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _outage_notices(receiver: Receiver, path: str, dependency: str) -> list[dict]:
    return [b for b in receiver.bodies(path)
            if b["commonLabels"].get("alertname") == "dependency_down"
            and b["commonLabels"].get("dependency") == dependency]


def _own_tracking(tmp_path, make_database, s3_server, monkeypatch) -> TrackingServer:
    db = make_database("mlflow")
    bucket = s3_server.make_bucket("outage")
    tracking = start_tracking(tmp_path / "tracking", {
        "DRIFTLINE_MODE": "local", "TRACKING_BACKEND_URI": db,
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts", **s3_server.env,
    }, bucket=bucket, db_url=db)
    for key, value in CHECKSUM_ENV.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(tracking.url)
    return tracking


@pytest.fixture
def receivers():
    webhook, slack = Receiver().start(), Receiver().start()
    yield webhook, slack
    webhook.stop()
    slack.stop()


def _outage_env(webhook: Receiver, slack: Receiver) -> dict[str, str]:
    return {"MONITOR_DEPENDENCY_DOWN_AFTER_SECONDS": str(DOWN_AFTER), "MONITOR_DEPENDENCY_CHECK_SECONDS": "1",
            "ALERT_WEBHOOK_URL": f"{webhook.url}/webhook", "ALERT_SLACK_WEBHOOK_URL": f"{slack.url}/slack",
            "ALERT_DELIVERY_INTERVAL_SECONDS": "1", "MONITOR_PUBLIC_URL": "http://monitor.test"}


def test_tracking_outage_alerts_records_missed_slots_and_catches_up(
        tmp_path, make_database, s3_server, monitor_db, unique_name, monkeypatch, receivers):
    webhook, slack = receivers
    tracking = _own_tracking(tmp_path, make_database, s3_server, monkeypatch)
    name = unique_name("outage")
    register_model(mlflow.MlflowClient(tracking.url), name, kind="identity")
    proc, url = start_monitor(tmp_path / "monitor", "monitor", db_url=monitor_db, tracking_url=tracking.url,
                              model=name, interval=1.0, workers=2, **_outage_env(webhook, slack))
    try:
        wait_for(lambda: rows(monitor_db, "SELECT id FROM evaluations WHERE status = 'ok'"), 60,
                 "a first ok evaluation", proc)

        killed = time.monotonic()
        tracking.stop()
        wait_for(lambda: _outage_notices(webhook, "/webhook", "tracking"), 60, "dependency_down (tracking)",
                 proc)
        time_to_alert = time.monotonic() - killed
        firing = _outage_notices(webhook, "/webhook", "tracking")[0]
        assert firing["status"] == "firing" and "tracking server" in firing["commonAnnotations"]["summary"]
        wait_for(lambda: _slack_notices(slack, "tracking", "FIRING"), 10, "the Slack notice", proc)
        assert DOWN_AFTER - 1 <= time_to_alert < DOWN_AFTER + 15, time_to_alert
        alerts = _get(f"{url}/api/alerts?alertname=dependency_down&state=firing")["alerts"]
        assert [a["labels"]["dependency"] for a in alerts] == ["tracking"]
        with urllib.request.urlopen(f"{url}/", timeout=10) as resp:
            assert 'data-dependency="tracking"' in resp.read().decode()
        assert _get(f"{url}/api/missed-slots?open=true")["missed_slots"], "no missed slot recorded"

        tracking.start()  # returns once /health answers: recovery is timed from there
        restarted = time.monotonic()
        wait_for(lambda: [b for b in _outage_notices(webhook, "/webhook", "tracking")
                          if b["status"] == "resolved"], 60, "dependency_down resolved", proc)
        time_to_resolved = time.monotonic() - restarted
        last_missed = rows(monitor_db, "SELECT max(slot) FROM missed_slots")[0][0]
        wait_for(lambda: rows(monitor_db, "SELECT id FROM evaluations WHERE status = 'ok' "
                                          "AND batch_id = :b", b=f"sim-{last_missed + 1}")
                 or rows(monitor_db, "SELECT id FROM evaluations WHERE status = 'ok' AND "
                                     "finished_at > now() - interval '3 seconds'"), 60,
                 "evaluations to resume", proc)
        time_to_recover = time.monotonic() - restarted

        missed = _get(f"{url}/api/missed-slots?model={name}&limit=500")["missed_slots"]
        assert missed, "no missed slot recorded for the model"
        assert all(m["dependency"] == "tracking" for m in missed), [
            (m["slot"], m["dependency"], m["reason"][:160]) for m in missed if m["dependency"] != "tracking"]
        wait_for(lambda: not _get(f"{url}/api/missed-slots?open=true")["missed_slots"], 30,
                 "every missed slot caught up", proc)
        caught = _get(f"{url}/api/missed-slots?model={name}&limit=500")["missed_slots"]
        assert all(m["caught_up_evaluation_id"] for m in caught)
        # Each missed slot is caught up by an evaluation of that slot or a later one.
        evaluated = dict(rows(monitor_db, "SELECT id, batch_id FROM evaluations WHERE status <> 'failed'"))
        assert all(int(evaluated[m["caught_up_evaluation_id"]].removeprefix("sim-")) >= m["slot"]
                   for m in caught)
        # One notice per receiver per transition: firing once, resolved once.
        statuses = [b["status"] for b in _outage_notices(webhook, "/webhook", "tracking")]
        assert statuses == ["firing", "resolved"]
        print(f"\ntracking outage: alert after {time_to_alert:.1f} s (threshold {DOWN_AFTER:g} s), resolved "
              f"{time_to_resolved:.1f} s and evaluating {time_to_recover:.1f} s after it answered again, "
              f"{len(caught)} slot(s) recorded missed")
    finally:
        proc.stop()
        tracking.stop()


def test_webhook_receiver_outage_is_reported_through_the_other_receivers(
        tmp_path, monitor_db, tracking_server, mlflow_client, unique_name, receivers):
    webhook, slack = receivers
    name = unique_name("hookdown")
    register_model(mlflow_client, name, kind="identity")
    proc, url = start_monitor(tmp_path / "monitor", "monitor", db_url=monitor_db,
                              tracking_url=tracking_server.url, model=name, interval=3600, workers=1,
                              **_outage_env(webhook, slack))
    try:
        stopped = time.monotonic()
        webhook.stop()
        # An alert raised while the webhook is down must reach it later, not be lost.
        token = {"Authorization": "Bearer " + "t" * 24, "Content-Type": "application/json"}
        req = urllib.request.Request(f"{url}/api/models/{name}/evaluate", method="POST", headers=token,
                                     data=json.dumps({"scenario": "data_drift", "seed": 5}).encode())
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 201
        wait_for(lambda: _slack_notices(slack, "webhook", "FIRING"), 60, "dependency_down (webhook) on Slack",
                 proc)
        time_to_alert = time.monotonic() - stopped
        down = _get(f"{url}/api/alerts?alertname=dependency_down")["alerts"]
        assert [a["labels"]["dependency"] for a in down] == ["webhook"] and down[0]["state"] == "firing"

        restarted = time.monotonic()
        webhook.start()
        wait_for(lambda: [b for b in webhook.bodies("/webhook")
                          if b["commonLabels"].get("alertname") == "data_drift"], 60,
                 "the data_drift notice held back while the webhook was down", proc)
        wait_for(lambda: _slack_notices(slack, "webhook", "RESOLVED"), 60,
                 "dependency_down (webhook) resolved on Slack", proc)
        time_to_recover = time.monotonic() - restarted
        # The webhook is never told about its own outage; the held-back alert arrives exactly once.
        assert _outage_notices(webhook, "/webhook", "webhook") == []
        drift = [b for b in webhook.bodies("/webhook") if b["commonLabels"].get("alertname") == "data_drift"]
        assert len(drift) == 1
        print(f"\nwebhook outage: dependency_down via Slack after {time_to_alert:.1f} s, held-back alert "
              f"and resolve {time_to_recover:.1f} s after the receiver returned, 0 notifications lost")
    finally:
        proc.stop()


def test_database_outage_is_notified_directly_and_recorded_when_it_returns(
        tmp_path, monitor_db, tracking_server, mlflow_client, unique_name, receivers):
    """The monitor's own database blocked (ALLOW_CONNECTIONS false + backends terminated: a real outage
    of this test's database only, the shared PostgreSQL server stays up)."""
    webhook, slack = receivers
    name = unique_name("dbdown")
    register_model(mlflow_client, name, kind="identity")
    proc, url = start_monitor(tmp_path / "monitor", "monitor", db_url=monitor_db,
                              tracking_url=tracking_server.url, model=name, interval=1.0, workers=2,
                              **_outage_env(webhook, slack))
    db_name = sa.make_url(monitor_db).database
    admin = sa.create_engine(postgres.ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        wait_for(lambda: rows(monitor_db, "SELECT id FROM evaluations WHERE status = 'ok'"), 60,
                 "a first ok evaluation", proc)
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": db_name})
        blocked = time.monotonic()
        try:
            wait_for(lambda: _outage_notices(webhook, "/webhook", "database"), 60,
                     "dependency_down (database) sent directly", proc)
            time_to_alert = time.monotonic() - blocked
            wait_for(lambda: _slack_notices(slack, "database", "FIRING"), 10, "the Slack notice", proc)
            # The outage lasts at least 5 one-second slots whatever the alert's speed (its notices came in
            # under 3 s once, and only one slot had been missed by then): at least 3 are counted below.
            time.sleep(max(0.0, 5.0 - (time.monotonic() - blocked)))
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true'))
        restored = time.monotonic()
        wait_for(lambda: [b for b in _outage_notices(webhook, "/webhook", "database")
                          if b["status"] == "resolved"], 60, "dependency_down (database) resolved", proc)
        time_to_resolved = time.monotonic() - restored
        episodes = rows(monitor_db, "SELECT starts_at, ends_at FROM alert_episodes "
                                    "WHERE alertname = 'dependency_down' AND labels::text LIKE '%database%'")
        assert len(episodes) == 1 and episodes[0][1] > episodes[0][0]
        sent = rows(monitor_db, "SELECT receiver, kind, status FROM alert_deliveries d JOIN alerts a "
                                "ON a.id = d.alert_id WHERE a.alertname = 'dependency_down' ORDER BY d.id")
        assert {(r[0], r[1]) for r in sent if r[2] == "sent"} >= {("webhook", "firing"),
                                                                  ("webhook", "resolved")}
        wait_for(lambda: rows(monitor_db, "SELECT id FROM evaluations WHERE status = 'ok' AND "
                                          "finished_at > now() - interval '2 seconds'"), 60,
                 "evaluations to resume", proc)
        time_to_recover = time.monotonic() - restored
        # The slots of the outage were noted in memory by the last leader and written afterwards.
        wait_for(lambda: rows(monitor_db, "SELECT id FROM missed_slots WHERE dependency = 'database' "
                                          "AND caught_up_evaluation_id IS NOT NULL"), 30,
                 "the outage's missed slots, caught up", proc)
        missed = rows(monitor_db, "SELECT count(*) FROM missed_slots WHERE dependency = 'database'")[0][0]
        assert missed >= 3
        statuses = [b["status"] for b in _outage_notices(webhook, "/webhook", "database")]
        assert statuses == ["firing", "resolved"]
        print(f"\ndatabase outage: direct alert after {time_to_alert:.1f} s, resolved "
              f"{time_to_resolved:.1f} s and evaluating {time_to_recover:.1f} s after it returned, "
              f"{missed} slot(s) recorded missed")
    finally:
        proc.stop()
        admin.dispose()
