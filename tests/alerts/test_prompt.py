"""Prompt delivery: a notification leaves right after the evaluation's commit, not at the next
delivery cycle, without holding up the push response and without ever being sent twice."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest

from monitor.registry import TrackingUnavailable
from monitor.sources import Batch
from tests.alerts.conftest import TOKEN, auth
from tests.services.process import free_port
from tests.services.receiver import Receiver as HttpReceiver

INTERVAL = 30.0  # the periodic delivery cycle: far longer than any wait below


class TrackingDown:
    """A registry whose tracking server is unreachable: every evaluation fails (monitor_failure)."""

    def resolve(self, name: str, alias: str | None = None) -> str:
        raise TrackingUnavailable("tracking server unreachable")

    def load(self, name: str, version: str):  # noqa: ANN201
        raise TrackingUnavailable("tracking server unreachable")


@pytest.fixture
def make_monitor(db_url: str) -> Iterator[Callable[..., Any]]:
    """Factory: a monitor app (create_app) on the test's database, scheduler off, delivery interval 30 s,
    one failed evaluation fires monitor_failure. Several apps on one database are several workers."""
    from monitor.app import create_app
    from monitor.settings import MonitorSettings

    apps = []

    def make(webhook_url: str) -> Any:
        app = create_app(MonitorSettings(**{
            "DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": db_url, "MONITOR_SCHEDULER": "false",
            "MONITOR_SOURCE": "push", "MONITOR_API_TOKEN": TOKEN, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "ALERT_WEBHOOK_URL": webhook_url, "ALERT_DELIVERY_INTERVAL_SECONDS": str(INTERVAL),
            "ALERT_FAILURE_THRESHOLD": "1",
        }))
        app.extensions["driftline"].service.registry = TrackingDown()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["driftline"].close()


def _mine(receiver: HttpReceiver, model: str) -> list[Any]:
    return [b for b in receiver.bodies("/webhook") if b["commonLabels"].get("model") == model]


def _wait_quiet(apps: list[Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(a.extensions["driftline_alerts"].prompt.running for a in apps) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_pushed_batch_alert_arrives_long_before_the_delivery_cycle_and_once(make_monitor, receiver,
                                                                            unique_name):
    app = make_monitor(f"{receiver.url}/webhook")
    runtime = app.extensions["driftline_alerts"]
    assert runtime.config.delivery_interval.total_seconds() == INTERVAL and runtime.prompt is not None
    client = app.test_client()
    model = unique_name("prompt")

    started = time.monotonic()
    resp = client.post(f"/api/models/{model}/batches", json=[{"x0": 1.0, "x1": 2.0, "y": 3.0}],
                       headers={**auth(), "X-Batch-Id": "b1"})
    assert resp.status_code == 503  # the evaluation failed (tracking down): monitor_failure fires
    body = receiver.wait_for(1, "/webhook", timeout=3.0)[0]
    latency = time.monotonic() - started
    assert latency < 3.0, f"alert took {latency:.2f} s"
    assert body["status"] == "firing" and body["commonLabels"]["alertname"] == "monitor_failure"
    assert body["commonLabels"]["model"] == model

    # Still failing: inside the repeat interval nothing more is queued; a delivery cycle finds nothing.
    resp = client.post(f"/api/models/{model}/batches", json=[{"x0": 1.0, "x1": 2.0, "y": 3.0}],
                       headers={**auth(), "X-Batch-Id": "b2"})
    assert resp.status_code == 503
    _wait_quiet([app])
    stats = runtime.worker.run_cycle()
    assert stats.sent == 0
    time.sleep(0.3)
    assert len(_mine(receiver, model)) == 1
    deliveries = client.get(f"/api/deliveries?fingerprint={body['alerts'][0]['fingerprint']}").get_json()
    assert sorted((d["receiver"], d["status"], d["attempts"]) for d in deliveries["deliveries"]) == [
        ("log", "sent", 1), ("webhook", "sent", 1)]


def test_several_workers_deliver_each_notification_exactly_once(make_monitor, receiver, unique_name):
    """Two apps on one database (two gunicorn workers): each wakes its own delivery, both threads race
    over the same outbox, the claims keep every notification to one request."""
    apps = [make_monitor(f"{receiver.url}/webhook") for _ in range(2)]
    models = [unique_name("worker") for _ in range(6)]
    frame = pd.DataFrame({"x0": [1.0], "x1": [2.0], "y": [3.0]})

    def push(app: Any, names: list[str]) -> None:
        service = app.extensions["driftline"].service
        for name in names:
            assert service.evaluate(name, Batch("b1", "push", frame)).status == "failed"

    threads = [threading.Thread(target=push, args=(app, models[i::2])) for i, app in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    receiver.wait_for(len(models), "/webhook", timeout=5.0)
    _wait_quiet(apps)
    time.sleep(0.3)
    for model in models:
        assert [b["status"] for b in _mine(receiver, model)] == ["firing"], model
    keys = [r.headers.get("Idempotency-Key") for r in receiver.received if r.path == "/webhook"]
    assert len(keys) == len(set(keys)) == len(models)


class SlowReceiver:
    """Answers 200 after ``delay`` seconds and records when each request arrived and was answered."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = free_port()
        self.done: list[tuple[float, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(owner.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                owner.done.append((time.monotonic(), json.loads(raw)))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_push_response_does_not_wait_for_delivery(make_monitor, unique_name):
    slow = SlowReceiver(delay=2.0)
    try:
        app = make_monitor(f"http://127.0.0.1:{slow.port}/webhook")
        model = unique_name("slowhook")
        started = time.monotonic()
        resp = app.test_client().post(f"/api/models/{model}/batches", json=[{"x0": 1.0, "x1": 2.0, "y": 3.0}],
                                      headers=auth())
        answered = time.monotonic()
        assert resp.status_code == 503
        assert answered - started < 1.5, "the push waited for the receiver"
        deadline = time.monotonic() + 6
        while not slow.done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(slow.done) == 1 and slow.done[0][1]["commonLabels"]["model"] == model
        assert slow.done[0][0] > answered  # answered first, delivered in the background after
        _wait_quiet([app])
    finally:
        slow.stop()


def test_rolled_back_evaluation_wakes_nothing(make_monitor, receiver, unique_name):
    from monitor.db import utcnow
    from monitor.models import Evaluation
    from tests.alerts.conftest import verdict

    app = make_monitor(f"{receiver.url}/webhook")
    monitor, runtime = app.extensions["driftline"], app.extensions["driftline_alerts"]
    model = unique_name("rollback")
    with pytest.raises(RuntimeError), monitor.sessions() as session, session.begin():
        row = Evaluation(model_name=model, model_version="1", alias="champion", batch_id="b1", source="push",
                         started_at=utcnow(), finished_at=utcnow(), **verdict("data_drift"))
        session.add(row)
        session.flush()
        runtime.engine.on_evaluation(session, row)
        raise RuntimeError("the evaluation's transaction fails after the listener ran")
    time.sleep(0.3)
    assert runtime.prompt.passes == 0 and not runtime.prompt.running
    assert receiver.bodies("/webhook") == []
