"""Delivery through the outbox to real receivers: a local webhook/Slack receiver and a real Alertmanager."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from pydantic import SecretStr

from monitor.alerts.config import Receiver
from monitor.alerts.delivery import DeliveryWorker
from monitor.alerts.engine import AlertEngine
from monitor.alerts.models import Alert, Delivery
from monitor.db import make_engine, make_session_factory, utcnow
from tests.alerts.conftest import alert_config


def _for_model(bodies, model):
    return [b for b in bodies if b["commonLabels"].get("model") == model]


def _am_alerts(alertmanager, model, **filters):
    return [a for a in alertmanager.alerts(**filters) if a["labels"].get("model") == model]


def test_data_drift_fires_once_per_receiver_and_resolves_everywhere(
        sessions, record, receiver, alertmanager, am_receiver, unique_name):
    model = unique_name("drift")
    config = alert_config(receiver, alertmanager)
    engine, worker = AlertEngine(config), DeliveryWorker(sessions, config)

    first = record(engine, model, "data_drift")
    worker.run_cycle()
    webhook = receiver.wait_for(1, "/webhook")
    slack = receiver.wait_for(1, "/slack")
    body = webhook[0]
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "webhook"
    assert set(body) >= {"groupKey", "truncatedAlerts", "groupLabels", "commonLabels", "commonAnnotations",
                         "externalURL", "alerts"}
    sent = body["alerts"][0]
    assert sent["labels"] == {"alertname": "data_drift", "model": model, "version": "1",
                              "severity": "warning", "service": "driftline-monitor"}
    assert "x0 shifted: KS 0.62 (p=1e-12), mean 50.1 → 75.3" in sent["annotations"]["summary"]
    assert sent["annotations"]["drifted_features"] == "x0"
    assert sent["generatorURL"] == f"http://monitor.test/evaluations/{first}"
    assert sent["annotations"]["mlflow_run_url"] == "http://mlflow.test/#/runs/run123"
    assert slack[0]["text"].startswith(":warning: FIRING: data_drift on " + model)
    assert slack[0]["blocks"][0]["type"] == "header"
    deadline = time.monotonic() + 15
    while not _for_model(am_receiver.bodies("/am"), model) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [b["status"] for b in _for_model(am_receiver.bodies("/am"), model)] == ["firing"]
    assert len(_am_alerts(alertmanager, model, active="true")) == 1

    for _ in range(3):  # still drifted, inside repeat_interval: nothing more
        record(engine, model, "data_drift")
        worker.run_cycle()
    time.sleep(2.5)  # longer than Alertmanager's group_interval
    assert len(receiver.bodies("/webhook")) == 1 and len(receiver.bodies("/slack")) == 1
    assert len(_for_model(am_receiver.bodies("/am"), model)) == 1

    record(engine, model, "clean")
    worker.run_cycle()
    assert len(receiver.bodies("/webhook")) == 1  # one clean evaluation is not enough (resolve_after=2)
    record(engine, model, "clean")
    worker.run_cycle()
    resolved = receiver.wait_for(2, "/webhook")[1]
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert receiver.wait_for(2, "/slack")[1]["text"].startswith(":white_check_mark: RESOLVED")
    deadline = time.monotonic() + 15
    while len(_for_model(am_receiver.bodies("/am"), model)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [b["status"] for b in _for_model(am_receiver.bodies("/am"), model)] == ["firing", "resolved"]
    assert _am_alerts(alertmanager, model, active="true") == []
    with sessions() as session:
        assert session.scalars(sa.select(Delivery.status)).all() == ["sent"] * 8  # 4 receivers × 2


def test_outage_and_monitor_restart_lose_nothing_and_double_nothing(db_url, record, receiver, unique_name):
    model = unique_name("outage")
    config = alert_config(receiver)
    engine1 = make_engine(db_url)
    sessions1 = make_session_factory(engine1)
    worker1 = DeliveryWorker(sessions1, config)
    clock = {"offset": timedelta(0)}

    def now():
        return utcnow() + clock["offset"]

    receiver.status = 503
    record(AlertEngine(config), model, "data_drift")
    for _ in range(3):
        worker1.run_cycle(now)
        clock["offset"] += timedelta(seconds=20)  # past the (capped, jittered) backoff
    receiver.stop()  # now refusing connections altogether
    worker1.run_cycle(now)
    clock["offset"] += timedelta(seconds=20)
    with sessions1() as session:
        row = session.scalars(sa.select(Delivery).where(Delivery.receiver == "webhook")).one()
        assert row.status == "pending" and row.failed_attempts == 4
        assert row.last_error == "connection failed (receiver unreachable)"
    engine1.dispose()  # the monitor goes away …
    del worker1

    engine2 = make_engine(db_url)  # … and comes back: a new process, nothing in memory
    sessions2 = make_session_factory(engine2)
    worker2 = DeliveryWorker(sessions2, config)
    worker2.run_cycle(now)  # receiver still down
    clock["offset"] += timedelta(seconds=20)
    receiver.status = 200
    receiver.start()
    for _ in range(3):
        worker2.run_cycle(now)
        clock["offset"] += timedelta(seconds=20)
    assert len(receiver.bodies("/webhook")) == 1 and len(receiver.bodies("/slack")) == 1
    assert receiver.refused == 0 or receiver.refused >= 3
    with sessions2() as session:
        rows = session.scalars(sa.select(Delivery).order_by(Delivery.id)).all()
        assert {r.receiver: r.status for r in rows} == {"webhook": "sent", "slack": "sent", "log": "sent"}
        assert {r.receiver: r.failed_attempts for r in rows}["webhook"] == 5
    engine2.dispose()


def test_resolved_never_overtakes_firing_after_an_outage(sessions, record, receiver, unique_name):
    model = unique_name("order")
    config = alert_config(receiver)
    engine, worker = AlertEngine(config), DeliveryWorker(sessions, config)
    receiver.status = 503
    record(engine, model, "data_drift")
    worker.run_cycle()  # firing fails, backs off
    record(engine, model, "clean")
    record(engine, model, "clean")  # resolved queued while the firing one waits
    receiver.status = 200
    clock = utcnow() + timedelta(seconds=30)
    for _ in range(3):
        worker.run_cycle(lambda: clock)
    assert [b["status"] for b in receiver.bodies("/webhook")] == ["firing", "resolved"]


def test_two_workers_never_send_the_same_row(sessions, record, receiver, unique_name):
    config = alert_config(receiver)
    engine = AlertEngine(config)
    for i in range(15):
        record(engine, unique_name(f"m{i}"), "data_drift")
    workers = [DeliveryWorker(sessions, config) for _ in range(3)]
    threads = [threading.Thread(target=w.run_cycle) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [r.headers.get("Idempotency-Key") for r in receiver.received]
    assert len(keys) == 30 and len(set(keys)) == 30  # 15 alerts × (webhook + slack), each once


def test_receiver_urls_never_reach_logs_or_errors(sessions, record, receiver, unique_name, caplog):
    secret_path = "/services/T000/B000/s3cr3t-token"
    config = alert_config(receivers=(Receiver("slack", "slack", SecretStr(receiver.url + secret_path)),))
    receiver.stop()
    caplog.set_level(logging.DEBUG)
    record(AlertEngine(config), unique_name("secret"), "data_drift")
    DeliveryWorker(sessions, config).run_cycle()
    with sessions() as session:
        row = session.scalars(sa.select(Delivery)).one()
    assert row.failed_attempts == 1
    receiver.start()
    DeliveryWorker(sessions, config).run_cycle(lambda: utcnow() + timedelta(seconds=30))
    assert receiver.wait_for(1, secret_path)
    for text in (caplog.text, row.last_error, repr(config)):
        assert "s3cr3t" not in text and str(receiver.port) not in text


def test_repeat_interval_renotifies_a_still_firing_alert(sessions, record, receiver, unique_name):
    config = alert_config(receiver)
    engine, worker = AlertEngine(config), DeliveryWorker(sessions, config)
    record(engine, unique_name("repeat"), "data_drift")
    worker.run_cycle()
    later = utcnow() + config.lifecycle.repeat_interval + timedelta(seconds=1)
    worker.run_cycle(lambda: later)
    assert [b["status"] for b in receiver.bodies("/webhook")] == ["firing", "firing"]
    with sessions() as session:
        assert session.scalars(sa.select(Alert.state)).one() == "firing"
