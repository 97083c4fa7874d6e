"""Alert history: one ``alert_episodes`` row per firing → resolved episode of an alert identity.

The ``alerts`` row holds only the current state of an identity; each time it fires, ``open_episode``
starts a new history row (with the evaluation that fired it), and ``close_episode`` ends it (with the
evaluation, or the reason, that resolved it). Delivery metrics and time-to-restore read these rows,
so an alert that fires again keeps its earlier episodes. Written in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.alerts.models import Alert, AlertEpisode, aware


def open_episode(session: Session, alert: Alert, evaluation_id: int | None, at: datetime) -> AlertEpisode:
    session.flush()  # the alert needs its id
    episode = AlertEpisode(alert_id=alert.id, fingerprint=alert.fingerprint, alertname=alert.alertname,
                           model_name=alert.model_name, model_version=alert.model_version,
                           labels=dict(alert.labels), summary=(alert.annotations or {}).get("summary"),
                           starts_at=aware(alert.starts_at) or at, fired_evaluation_id=evaluation_id)
    session.add(episode)
    return episode


def close_episode(session: Session, alert: Alert, at: datetime, evaluation_id: int | None,
                  resolved_by: str | None) -> AlertEpisode | None:
    """End the alert's open episode; one is created first for alerts that fired before history existed."""
    episode = session.scalars(sa.select(AlertEpisode)
                              .where(AlertEpisode.alert_id == alert.id, AlertEpisode.ends_at.is_(None))
                              .order_by(AlertEpisode.id.desc())).first()
    if episode is None:
        if alert.id is None or alert.starts_at is None:
            return None
        episode = open_episode(session, alert, alert.fired_evaluation_id, at)
    episode.ends_at = at
    episode.resolved_evaluation_id = evaluation_id
    episode.resolved_by = resolved_by
    return episode


def episode_doc(row: AlertEpisode) -> dict:
    from monitor.alerts.payloads import rfc3339

    starts, ends = aware(row.starts_at), aware(row.ends_at)
    return {"id": row.id, "alert_id": row.alert_id, "fingerprint": row.fingerprint,
            "alertname": row.alertname, "model": row.model_name, "version": row.model_version,
            "labels": row.labels, "summary": row.summary, "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends) if ends else None,
            "duration_seconds": (ends - starts).total_seconds() if ends and starts else None,
            "fired_evaluation_id": row.fired_evaluation_id,
            "resolved_evaluation_id": row.resolved_evaluation_id, "resolved_by": row.resolved_by}
