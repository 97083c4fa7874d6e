"""``estimated_performance_degradation``: fires on an estimate while the labels are out, with the interval
in its message, and is settled (resolved, confirmed or not) when the labels arrive. Real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from monitor.alerts.engine import AlertEngine
from monitor.alerts.models import Alert, Delivery
from monitor.alerts.rules import alert_labels, fingerprint
from monitor.models import Evaluation
from tests.alerts.conftest import alert_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _estimate(value: float) -> dict:
    return {"primary": "mse", "confidence": 0.9, "baseline": {"mse": 1.0},
            "metrics": {"mse": {"estimate": value, "lower": value - 0.3, "upper": value + 0.3}}}


def _label(sessions, engine: AlertEngine, evaluation_id: int, mse: float, now: datetime) -> None:
    with sessions() as session, session.begin():
        row = session.get(Evaluation, evaluation_id)
        row.labels, row.mse, row.baseline_mse, row.concept_drift = "received", mse, 1.0, mse > 1.5
        row.estimate = {**row.estimate, "judged": {"mse": {"realized": mse, "covered": False}}}
        session.flush()
        engine.on_labels(session, row, now=now)


def _alert(sessions, name: str, model: str) -> Alert:
    with sessions() as session:
        return session.scalar(sa.select(Alert).where(
            Alert.fingerprint == fingerprint(alert_labels(name, model, "1"))))


def test_estimated_degradation_fires_then_the_labels_confirm_it(record, sessions, unique_name):
    engine = AlertEngine(alert_config())
    model = unique_name("est")
    pending = {"labels": "pending", "mse": None, "mae": None, "baseline_mse": None, "baseline_mae": None,
               "concept_drift": None}
    first = record(engine, model, "clean", now=T0, estimate=_estimate(2.2), **pending)
    alert = _alert(sessions, "estimated_performance_degradation", model)
    assert alert.state == "firing" and alert.severity == "warning"
    assert "1.9–2.5, 90 % interval" in alert.annotations["summary"]
    assert _alert(sessions, "performance_degradation", model) is None  # nothing realized yet

    _label(sessions, engine, first, 2.4, T0 + timedelta(minutes=5))
    settled = _alert(sessions, "estimated_performance_degradation", model)
    assert settled.state == "resolved" and settled.annotations["confirmed"] == "true"
    assert "realized mse 2.4" in settled.annotations["resolved_by"]
    assert _alert(sessions, "performance_degradation", model).state == "firing"  # confirmed by labels
    assert _alert(sessions, "concept_drift", model).state == "firing"
    with sessions() as session:
        kinds = [d.kind for d in session.scalars(sa.select(Delivery).where(
            Delivery.fingerprint == settled.fingerprint).order_by(Delivery.id))]
    assert kinds == ["firing", "resolved"]


def test_labels_that_do_not_confirm_the_estimate_resolve_it_unconfirmed(record, sessions, unique_name):
    engine = AlertEngine(alert_config())
    model = unique_name("est")
    pending = {"labels": "pending", "mse": None, "mae": None, "baseline_mse": None, "baseline_mae": None,
               "concept_drift": None}
    first = record(engine, model, "clean", now=T0, estimate=_estimate(1.8), **pending)
    assert _alert(sessions, "estimated_performance_degradation", model).state == "firing"
    _label(sessions, engine, first, 1.1, T0 + timedelta(minutes=5))
    settled = _alert(sessions, "estimated_performance_degradation", model)
    assert settled.state == "resolved" and settled.annotations["confirmed"] == "false"
    assert _alert(sessions, "performance_degradation", model) is None
