"""Silences through the API: no notification while one matches, notifications resume after it ends."""

from __future__ import annotations

import time
from datetime import timedelta

from monitor.alerts.payloads import rfc3339
from monitor.alerts.silences import matches, normalise_matchers
from monitor.db import utcnow
from tests.alerts.conftest import auth


def _silence(client, model: str, seconds: float, **extra):
    body = {"matchers": [{"name": "model", "value": model, "isRegex": False, "isEqual": True}],
            "endsAt": rfc3339(utcnow() + timedelta(seconds=seconds)), "createdBy": "alice",
            "comment": "planned backfill", **extra}
    return client.post("/api/silences", json=body, headers=auth())


def test_matchers_follow_alertmanager_semantics():
    labels = {"alertname": "data_drift", "model": "lasso", "version": "3"}
    assert matches([{"name": "model", "value": "las.*", "isRegex": True, "isEqual": True}], labels)
    anchored = [{"name": "model", "value": "las", "isRegex": True, "isEqual": True}]
    assert not matches(anchored, labels)
    not_equal = [{"name": "alertname", "value": "concept_drift", "isRegex": False, "isEqual": False}]
    assert matches(not_equal, labels)
    assert not matches([{"name": "model", "value": "lasso"}, {"name": "version", "value": "4"}], labels)


def test_matchers_that_match_everything_are_refused():
    for bad in ([], [{"name": "model", "value": ".*", "isRegex": True}],
                [{"name": "x", "value": "(", "isRegex": True}]):
        try:
            normalise_matchers(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_creating_or_expiring_a_silence_needs_the_token(monitor_app, unique_name):
    client = monitor_app.test_client()
    body = {"matchers": [{"name": "model", "value": "m"}], "endsAt": rfc3339(utcnow() + timedelta(hours=1)),
            "createdBy": "bob", "comment": "why"}
    assert client.post("/api/silences", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/silences", json=body, headers=wrong).status_code == 401
    created = client.post("/api/silences", json=body, headers=auth())
    assert created.status_code == 201
    silence_id = created.get_json()["silenceID"]
    assert client.delete(f"/api/silences/{silence_id}").status_code == 401
    expired = client.delete(f"/api/silences/{silence_id}", headers=auth())
    assert expired.get_json()["status"]["state"] == "expired"
    listed = client.get("/api/silences").get_json()["silences"]
    assert [s["status"]["state"] for s in listed] == ["expired"]
    past = {**body, "endsAt": rfc3339(utcnow() - timedelta(minutes=1))}
    assert client.post("/api/silences", json=past, headers=auth()).status_code == 400
    assert client.post("/api/silences", json={**body, "comment": ""}, headers=auth()).status_code == 400


def test_silenced_alert_is_quiet_until_the_silence_ends(monitor_app, record, receiver, unique_name):
    model = unique_name("silenced")
    client = monitor_app.test_client()
    runtime = monitor_app.extensions["driftline_alerts"]
    created = _silence(client, model, seconds=3)
    assert created.status_code == 201, created.get_json()
    silence_id = created.get_json()["silenceID"]
    ends = time.monotonic() + 3

    record(runtime.engine, model, "data_drift")
    record(runtime.engine, unique_name("other"), "data_drift")  # not matched: notified at once
    runtime.worker.run_cycle()
    record(runtime.engine, model, "data_drift")
    runtime.worker.run_cycle()
    time.sleep(0.3)
    assert all(b["commonLabels"]["model"] != model for b in receiver.bodies("/webhook"))
    alerts = client.get(f"/api/alerts?model={model}").get_json()["alerts"]
    assert [(a["state"], a["status"]["silencedBy"]) for a in alerts] == [("silenced", [silence_id])]
    assert alerts[0]["deliveries"] == []

    time.sleep(max(0.0, ends - time.monotonic()) + 0.1)
    runtime.worker.run_cycle()  # the silence is over and the alert still fires: notify now
    runtime.worker.run_cycle()
    mine = [b for b in receiver.bodies("/webhook") if b["commonLabels"]["model"] == model]
    assert [b["status"] for b in mine] == ["firing"]
    assert client.get(f"/api/alerts?model={model}").get_json()["alerts"][0]["state"] == "firing"
