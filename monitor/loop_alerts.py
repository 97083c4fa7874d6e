"""The closed loop's alerts, on the same alert model and outbox as the rules' (labels → fingerprint,
episodes, silences, receivers):

- ``challenger_ready`` (info): a challenger won its test under the `notify` policy; the evidence is in
  the annotations. Resolves when that version becomes champion or the challenger is replaced.
- ``champion_rolled_back`` (critical): the monitor rolled a new champion back. Resolves when another
  version is promoted.
- ``retraining_failed`` (warning): a retraining job failed or timed out; nothing moved. Resolves when a
  later retraining of the model succeeds.
- ``promotion_blocked`` (warning): a challenger won its test under the `auto` policy but failed the
  checks before the move (it does not load, does not predict its reference, or its signature does not
  take the champion's inputs); the failed check and the test's evidence are in the annotations, nothing
  moved. Resolves when a later promotion of the model succeeds or the challenger alias leaves that
  version.

Written in the caller's transaction (the decision or request it is about commits with it).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.alerts.engine import AlertEngine, _normalise_times
from monitor.alerts.episodes import close_episode, open_episode
from monitor.alerts.models import Alert
from monitor.alerts.rules import SEVERITY, alert_labels, fingerprint

log = logging.getLogger(__name__)


def fire(session: Session, engine: AlertEngine | None, alertname: str, model: str, version: str,
         summary: str, details: dict[str, Any], now: datetime) -> Alert:
    labels = alert_labels(alertname, model, version)
    fp = fingerprint(labels)
    stmt = sa.select(Alert).where(Alert.fingerprint == fp)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    alert = session.scalars(stmt).first()
    if alert is None:
        alert = Alert(fingerprint=fp, alertname=alertname, model_name=model, model_version=str(version),
                      severity=SEVERITY[alertname], labels=labels, annotations={}, state="inactive",
                      bad_streak=0, clean_streak=0, notified=False, episodes=0)
        session.add(alert)
    _normalise_times(alert)
    alert.annotations = {"summary": summary,
                         **{k: v if isinstance(v, str) else json.dumps(v, default=str)
                            for k, v in details.items()}}
    alert.bad_streak, alert.clean_streak = (alert.bad_streak or 0) + 1, 0
    if alert.state == "firing":
        session.flush()
        return alert
    alert.state, alert.starts_at, alert.ends_at = "firing", now, None
    alert.notified, alert.last_notified_at = False, None
    alert.episodes = (alert.episodes or 0) + 1
    alert.fired_evaluation_id = None
    open_episode(session, alert, None, now)
    session.flush()
    if engine is not None:
        engine.enqueue(session, alert, "firing", now, None)
    log.warning("%s: %s", alertname, summary)
    return alert


def resolve(session: Session, engine: AlertEngine | None, alertname: str, model: str, reason: str,
            now: datetime, keep_version: str | None = None, version: str | None = None) -> int:
    """Resolve the model's firing ``alertname`` alerts (but the one of ``keep_version``; only the one
    of ``version`` when given)."""
    stmt = sa.select(Alert).where(Alert.alertname == alertname, Alert.model_name == model,
                                  Alert.state == "firing")
    if keep_version is not None:
        stmt = stmt.where(Alert.model_version != str(keep_version))
    if version is not None:
        stmt = stmt.where(Alert.model_version == str(version))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    count = 0
    for alert in session.scalars(stmt).all():
        _normalise_times(alert)
        alert.state, alert.ends_at = "resolved", now
        alert.bad_streak, alert.clean_streak = 0, 1
        alert.annotations = {**alert.annotations, "resolved_by": reason}
        close_episode(session, alert, now, None, reason)
        if alert.notified and engine is not None:
            engine.enqueue(session, alert, "resolved", now, None)
        count += 1
    return count


def firing(session: Session, alertname: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(model, version, annotations) of every firing ``alertname`` alert: one query, usually empty."""
    rows = session.execute(sa.select(Alert.model_name, Alert.model_version, Alert.annotations).where(
        Alert.alertname == alertname, Alert.state == "firing").order_by(Alert.id))
    return [(model, version, dict(annotations or {})) for model, version, annotations in rows]
