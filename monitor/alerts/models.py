"""Tables of the alerts: one row per alert identity, silences, and the delivery outbox.

Created by the Alembic revision ``0002_alerts`` (monitor/migrations/versions/0002_alerts.py);
``alert_episodes`` and ``alerts.fired_evaluation_id`` by ``0005_operations``.
``alert_deliveries.evaluation_id`` is a plain integer (no foreign key) so deleting old evaluations
never blocks on, or cascades into, the delivery history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import Base, utcnow


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Alert(Base):
    """The current state of one alert identity (labels → fingerprint)."""

    __tablename__ = "alerts"
    __table_args__ = (sa.UniqueConstraint("fingerprint", name="uq_alerts_fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(32))
    alertname: Mapped[str] = mapped_column(sa.String(64), index=True)
    model_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    model_version: Mapped[str] = mapped_column(sa.String(64))
    severity: Mapped[str] = mapped_column(sa.String(16))
    labels: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    annotations: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    generator_url: Mapped[str | None] = mapped_column(sa.Text)
    # inactive | pending | firing | resolved
    state: Mapped[str] = mapped_column(sa.String(16), default="inactive", index=True)
    bad_streak: Mapped[int] = mapped_column(default=0)
    clean_streak: Mapped[int] = mapped_column(default=0)
    starts_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Whether a firing notification was queued in the current episode, and when the last one was.
    notified: Mapped[bool] = mapped_column(default=False)
    last_notified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Last keep-alive push of this firing alert to Alertmanager.
    refreshed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    episodes: Mapped[int] = mapped_column(default=0)
    last_evaluation_id: Mapped[int | None] = mapped_column()
    # The evaluation that made the current (or last) episode fire: what an alert links to.
    fired_evaluation_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Silence(Base):
    __tablename__ = "silences"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    matchers: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    starts_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    created_by: Mapped[str] = mapped_column(sa.String(255))
    comment: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """The outbox: one row per receiver per notification, written with the evaluation that caused it."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(32))
    receiver: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # firing | resolved
    evaluation_id: Mapped[int | None] = mapped_column()
    # The alert as it was when the notification was decided (Alertmanager alert shape).
    alert: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | sent | dropped
    attempts: Mapped[int] = mapped_column(default=0)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(36))
    lease_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class AlertEpisode(Base):
    """One firing → resolved episode of an alert identity: the history the ``alerts`` row forgets when
    the same alert fires again. Evaluation ids are plain integers, like the outbox's."""

    __tablename__ = "alert_episodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(32))
    alertname: Mapped[str] = mapped_column(sa.String(64))
    model_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    model_version: Mapped[str] = mapped_column(sa.String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    summary: Mapped[str | None] = mapped_column(sa.Text)
    starts_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)
    fired_evaluation_id: Mapped[int | None] = mapped_column()
    resolved_evaluation_id: Mapped[int | None] = mapped_column()
    resolved_by: Mapped[str | None] = mapped_column(sa.Text)
