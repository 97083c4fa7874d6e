"""Alert and delivery state through the monitor's app: /api/alerts, /api/deliveries, /metrics."""

from __future__ import annotations

import pandas as pd

from monitor.registry import TrackingUnavailable
from monitor.sources import Batch


def test_delivery_state_is_visible_in_the_api_and_metrics(monitor_app, record, receiver, unique_name):
    model = unique_name("visible")
    client = monitor_app.test_client()
    runtime = monitor_app.extensions["driftline_alerts"]
    receiver.status = 503
    record(runtime.engine, model, "data_drift")
    runtime.worker.run_cycle()

    alert = client.get(f"/api/alerts?model={model}").get_json()["alerts"][0]
    by_receiver = {d["receiver"]: d for d in alert["deliveries"]}
    assert by_receiver["webhook"]["status"] == "pending" and by_receiver["webhook"]["failed_attempts"] == 1
    assert by_receiver["webhook"]["last_error"] == "HTTP 503 from receiver webhook"
    assert by_receiver["log"]["status"] == "sent"
    deliveries = client.get("/api/deliveries?status=pending").get_json()
    assert {d["receiver"] for d in deliveries["deliveries"]} == {"webhook", "slack"}
    assert deliveries["summary"]["webhook"] == {"pending": 1}
    assert str(receiver.port) not in client.get("/api/deliveries").get_data(as_text=True)
    one = client.get(f"/api/alerts/{alert['fingerprint']}").get_json()
    assert one["labels"]["model"] == model and len(one["deliveries"]) == 3

    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'driftline_alert_deliveries{receiver="webhook",status="pending"} 1.0' in metrics
    assert 'driftline_alert_delivery_failed_attempts_total{receiver="webhook"} 1.0' in metrics
    assert 'driftline_alerts{alertname="data_drift",state="firing"} 1.0' in metrics
    assert "driftline_evaluations" in metrics  # the monitor's own families are still there


class TrackingDown:
    """A registry whose tracking server is unreachable (fails fast instead of retrying)."""

    def resolve(self, name: str, alias: str | None = None) -> str:
        raise TrackingUnavailable("tracking server unreachable")

    def load(self, name: str, version: str):  # noqa: ANN201
        raise TrackingUnavailable("tracking server unreachable")


def test_evaluation_service_failures_fire_monitor_failure_after_n(monitor_app, receiver, unique_name):
    """Through the real EvaluationService: its listener writes the outbox in the evaluation's commit."""
    model = unique_name("failing")
    monitor = monitor_app.extensions["driftline"]
    runtime = monitor_app.extensions["driftline_alerts"]
    assert runtime.engine in monitor.service.listeners
    monitor.service.registry = TrackingDown()
    frame = pd.DataFrame({"x0": [1.0], "x1": [2.0]})
    for i in range(3):  # ALERT_FAILURE_THRESHOLD defaults to 3
        outcome = monitor.service.evaluate(model, Batch(f"b{i}", "push", frame))
        assert outcome.status == "failed"
        runtime.worker.run_cycle()
        if i < 2:
            assert receiver.bodies("/webhook") == []
    body = receiver.wait_for(1, "/webhook")[0]
    assert body["commonLabels"]["alertname"] == "monitor_failure" and body["status"] == "firing"
    assert "tracking server unreachable" in body["commonAnnotations"]["summary"]
