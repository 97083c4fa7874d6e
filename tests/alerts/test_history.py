"""Full alert history: every firing → resolved episode is kept with the evaluations that fired and
resolved it, an alert links to the evaluation that fired it, delivery metrics count every episode,
and retention prunes only what is old and finished. Real PostgreSQL, the monitor's own app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from monitor import delivery_metrics
from monitor.alerts.engine import AlertEngine
from monitor.alerts.models import Alert, AlertEpisode, Delivery
from monitor.alerts.rules import alert_labels, fingerprint
from monitor.dashboard import data
from tests.alerts.conftest import alert_config

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _story(record, engine: AlertEngine, model: str, start: datetime) -> dict[str, int]:
    """drift, drift, clean, clean (resolved), drift, clean, clean (resolved again), a minute apart."""
    ids = {}
    for i, (key, kind) in enumerate([("fired1", "data_drift"), ("again", "data_drift"), ("c1", "clean"),
                                     ("resolved1", "clean"), ("fired2", "data_drift"), ("c2", "clean"),
                                     ("resolved2", "clean")]):
        ids[key] = record(engine, model, kind, now=start + timedelta(minutes=i))
    return ids


def test_every_episode_is_kept_with_the_evaluations_that_fired_and_resolved_it(
        record, sessions, monitor_app, unique_name):
    engine = AlertEngine(alert_config())
    model = unique_name("history")
    ids = _story(record, engine, model, T0)
    fp = fingerprint(alert_labels("data_drift", model, "1"))

    doc = monitor_app.test_client().get(f"/api/alerts/{fp}").get_json()
    assert doc["episodes"] == 2 and doc["fired_evaluation_id"] == ids["fired2"]
    history = sorted(doc["history"], key=lambda e: e["id"])
    assert [(e["fired_evaluation_id"], e["resolved_evaluation_id"]) for e in history] == [
        (ids["fired1"], ids["resolved1"]), (ids["fired2"], ids["resolved2"])]
    assert [e["duration_seconds"] for e in history] == [180.0, 120.0]
    listed = monitor_app.test_client().get(f"/api/alert-episodes?model={model}").get_json()["episodes"]
    assert len(listed) == 2 and all(e["alertname"] == "data_drift" for e in listed)


def test_alert_links_to_the_evaluation_that_fired_it_not_the_last_bad_one(record, sessions, unique_name):
    engine = AlertEngine(alert_config())
    model = unique_name("link")
    fired = record(engine, model, "data_drift", now=T0)
    later = record(engine, model, "data_drift", now=T0 + timedelta(minutes=1))
    with sessions() as session:
        row = next(a for a in data.alert_rows(session, model=model) if a["name"] == "data_drift")
        alert = session.scalars(sa.select(Alert).where(Alert.id == row["id"])).one()
    assert row["evaluation_id"] == fired != later
    assert alert.last_evaluation_id == later  # what the old link showed


def test_delivery_metrics_count_every_episode(record, sessions, unique_name):
    engine = AlertEngine(alert_config())
    model = unique_name("metrics")
    _story(record, engine, model, T0)
    with sessions() as session:
        spans = data.episode_spans(session, data.alert_rows(session, model=model), model)
    result = delivery_metrics.delivery_metrics([], spans, now=T0 + timedelta(hours=1), model=model)
    # The alerts row alone knows only the second episode (2 min); the history has both.
    assert sorted(t.total_seconds() for t in result.restore_times) == [120.0, 180.0]
    assert result.open_alerts == 0


def test_retention_prunes_old_finished_history_only(record, sessions, monitor_app, unique_name):
    runtime = monitor_app.extensions["driftline_alerts"]
    engine = AlertEngine(alert_config())
    old, model = T0 - timedelta(days=400), unique_name("retention")
    _story(record, engine, model, old)                      # two old, finished episodes
    record(engine, model, "data_drift", now=old + timedelta(hours=1))  # an open one, also old
    with sessions() as session, session.begin():
        for row in session.scalars(sa.select(Delivery).where(Delivery.alert["labels"]["model"].as_string()
                                                             == model)):
            row.status, row.sent_at = "sent", old + timedelta(minutes=10)
        pending = session.scalars(sa.select(Delivery).order_by(Delivery.id.desc())).first()
        pending.status, pending.sent_at = "pending", None
    removed = runtime.prune_history(now=T0, force=True)
    assert removed["episodes"] == 2 and removed["deliveries"] >= 1
    with sessions() as session:
        left = session.scalars(sa.select(AlertEpisode).where(AlertEpisode.model_name == model)).all()
        assert [e.ends_at for e in left] == [None]  # the open episode stays
        statuses = session.scalars(sa.select(Delivery.status)).all()
        assert statuses.count("pending") == 1 and "sent" not in statuses
    assert runtime.prune_history(now=T0) == {}  # at most hourly
