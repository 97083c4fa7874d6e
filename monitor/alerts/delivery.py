"""The delivery worker: send what the outbox holds, once, in order, surviving receivers and restarts.

One cycle (``deliver_pending``):

1. ``AlertEngine.tick`` queues notifications that time made due (repeat interval, silence ended).
2. Due rows are claimed one at a time, oldest first. A row waits while an older pending row for the
   same receiver and alert exists, so "firing" is never overtaken by its "resolved". On PostgreSQL
   the claim is ``SELECT … FOR UPDATE SKIP LOCKED`` held while sending (two workers never send the
   same row); elsewhere (SQLite) a lease column is set by a conditional UPDATE.
3. A failure records ``last_error`` (never the URL), counts the attempt and sets ``next_attempt_at``
   with exponential backoff and jitter; that receiver is left alone for the rest of the cycle.
4. Firing alerts already delivered to Alertmanager are re-sent (keep-alive) so they stay active
   there; resolved ones are sent with their end time.

Delivery is at-least-once: a crash between a receiver's 2xx and the commit re-sends that one row.
Each request carries ``Idempotency-Key: driftline-delivery-<id>`` so receivers can drop the rare repeat.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, sessionmaker

from monitor.alerts.config import AlertConfig, Receiver
from monitor.alerts.engine import AlertEngine, active_silences
from monitor.alerts.models import Alert, Delivery, aware
from monitor.alerts.payloads import (
    alert_document,
    alertmanager_payload,
    log_record,
    slack_payload,
    webhook_payload,
)
from monitor.alerts.silences import silenced_by
from monitor.db import utcnow

log = logging.getLogger("monitor.alerts.delivery")
LEASE = timedelta(seconds=60)


class _NoRequestLines(logging.Filter):
    """urllib3 logs host, port and path of every request at DEBUG: a Slack URL's path is its secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_URLLIB3_FILTER = _NoRequestLines()


def keep_receiver_urls_out_of_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in logger.filters:
        logger.addFilter(_URLLIB3_FILTER)


class DeliveryError(Exception):
    """A receiver did not take a notification; the message never contains the receiver's URL."""


@dataclass
class CycleStats:
    queued: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    refreshed: int = 0
    down: set[str] = field(default_factory=set)


def backoff(failures: int, config: AlertConfig, rng: Callable[[], float] = random.random) -> timedelta:
    """base * 2^(failures-1), capped at backoff_max, times a jitter factor in [0.75, 1.25)."""
    base = config.backoff_base.total_seconds()
    delay = min(config.backoff_max.total_seconds(), base * 2 ** max(0, failures - 1))
    return timedelta(seconds=delay * (0.75 + 0.5 * rng()))


def _describe(exc: Exception, timeout: float) -> str:
    if isinstance(exc, DeliveryError):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (receiver unreachable)"
    return type(exc).__name__  # requests' messages carry the URL: never store or log them


def send(receiver: Receiver, alert: dict[str, Any], config: AlertConfig, now: datetime,
         http: requests.Session, delivery_id: int | None = None, idempotency_key: str | None = None) -> None:
    """Send one notification to one receiver; raise DeliveryError (URL-free message) on failure."""
    if receiver.kind == "log":
        log.warning(json.dumps(log_record(receiver.name, alert), sort_keys=True))
        return
    assert receiver.url is not None
    url = receiver.url.get_secret_value()
    if receiver.kind == "webhook":
        body: Any = webhook_payload(receiver.name, alert, config.public_url)
    elif receiver.kind == "slack":
        body = slack_payload(alert)
    else:
        body = alertmanager_payload(alert, now, config.alertmanager_ttl)
        url = url.rstrip("/") + "/api/v2/alerts"
    headers = {"User-Agent": "driftline-monitor"}
    if delivery_id is not None:
        headers["Idempotency-Key"] = f"driftline-delivery-{delivery_id}"
    elif idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    try:
        resp = http.post(url, json=body, headers=headers, timeout=config.http_timeout)
    except requests.RequestException as exc:
        raise DeliveryError(_describe(exc, config.http_timeout)) from None
    if not 200 <= resp.status_code < 300:
        raise DeliveryError(f"HTTP {resp.status_code} from receiver {receiver.name}")


class DeliveryWorker:
    def __init__(self, session_factory: sessionmaker, config: AlertConfig,
                 http: requests.Session | None = None) -> None:
        self.session_factory = session_factory
        self.config = config
        self.engine = AlertEngine(config)
        self.http = http or requests.Session()
        self.worker_id = str(uuid.uuid4())
        self.stopping = False
        keep_receiver_urls_out_of_logs()

    def stop(self) -> None:
        """Claim no further row (shutdown); a row being sent is finished and recorded first."""
        self.stopping = True

    def run_cycle(self, now: Callable[[], datetime] = utcnow, limit: int = 500) -> CycleStats:
        stats = CycleStats()
        if self.stopping:
            return stats
        with self.session_factory() as session, session.begin():
            stats.queued = self.engine.tick(session, now())
        self.deliver_due(now, limit, stats)
        stats.refreshed = self._refresh_alertmanager(now(), stats.down)
        return stats

    def deliver_due(self, now: Callable[[], datetime] = utcnow, limit: int = 500,
                    stats: CycleStats | None = None, stop: Callable[[], bool] | None = None) -> CycleStats:
        """Step 2-3 of a cycle only: claim and send the rows due now (prompt delivery after a commit).

        ``stop`` is asked between rows; a true answer ends the loop early (the next cycle goes on)."""
        stats = stats if stats is not None else CycleStats()
        for _ in range(limit):
            if self.stopping or (stop is not None and stop()):
                break
            outcome = self._deliver_one(now, stats.down)
            if outcome is None:
                break
            setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats

    # --- one row --------------------------------------------------------------------------------
    def _due(self, at: datetime, down: set[str]) -> sa.Select:
        older = aliased(Delivery)
        blocked = sa.exists().where(older.receiver == Delivery.receiver,
                                    older.fingerprint == Delivery.fingerprint,
                                    older.status == "pending", older.id < Delivery.id)
        stmt = (sa.select(Delivery)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= at, ~blocked)
                .order_by(Delivery.id).limit(1))
        if down:
            stmt = stmt.where(Delivery.receiver.not_in(sorted(down)))
        return stmt

    def _deliver_one(self, now: Callable[[], datetime], down: set[str]) -> str | None:
        with self.session_factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                with session.begin():
                    row = session.scalars(self._due(now(), down).with_for_update(skip_locked=True,
                                                                                 of=Delivery)).first()
                    if row is None:
                        return None
                    return self._attempt(session, row, now(), down)
            return self._deliver_one_leased(session, now, down)

    def _deliver_one_leased(self, session: Session, now: Callable[[], datetime],
                            down: set[str]) -> str | None:
        while True:
            with session.begin():
                at = now()
                free = sa.or_(Delivery.lease_until.is_(None), Delivery.lease_until < at)
                stmt = self._due(at, down).where(free)
                row = session.scalars(stmt).first()
                if row is None:
                    return None
                claimed = session.execute(
                    sa.update(Delivery)
                    .where(Delivery.id == row.id, Delivery.status == "pending",
                           sa.or_(Delivery.lease_until.is_(None), Delivery.lease_until < at))
                    .values(lease_owner=self.worker_id, lease_until=at + LEASE)
                    .execution_options(synchronize_session=False)).rowcount
            if claimed != 1:
                continue  # another worker took it: look for the next one
            with session.begin():
                row = session.get(Delivery, row.id, populate_existing=True)
                outcome = self._attempt(session, row, now(), down)
                row.lease_owner, row.lease_until = None, None
                return outcome

    def _attempt(self, session: Session, row: Delivery, at: datetime, down: set[str]) -> str:
        receiver = self.config.receiver(row.receiver)
        if receiver is None:
            row.status = "dropped"
            row.last_error = f"receiver {row.receiver} is no longer configured"
            log.warning("delivery dropped", extra={"receiver": row.receiver, "delivery": row.id})
            return "dropped"
        row.attempts += 1
        try:
            send(receiver, row.alert, self.config, at, self.http, row.id)
        except DeliveryError as exc:
            row.failed_attempts += 1
            row.last_error = str(exc)
            row.next_attempt_at = at + backoff(row.failed_attempts, self.config)
            down.add(row.receiver)
            log.warning("delivery failed", extra={"receiver": row.receiver, "delivery": row.id,
                                                  "attempt": row.attempts, "error": str(exc)})
            return "failed"
        row.status, row.sent_at, row.last_error = "sent", at, None
        if receiver.kind == "alertmanager" and row.kind == "firing":
            session.execute(sa.update(Alert).where(Alert.id == row.alert_id).values(refreshed_at=at)
                            .execution_options(synchronize_session=False))
        log.info("delivery sent", extra={"receiver": row.receiver, "delivery": row.id, "kind": row.kind})
        return "sent"

    # --- Alertmanager keep-alive -------------------------------------------------------------------
    def _refresh_alertmanager(self, at: datetime, down: set[str]) -> int:
        receiver = next((r for r in self.config.receivers if r.kind == "alertmanager"), None)
        if receiver is None or receiver.name in down:
            return 0
        stale = at - self.config.alertmanager_refresh
        with self.session_factory() as session, session.begin():
            pending = sa.exists().where(Delivery.alert_id == Alert.id, Delivery.receiver == receiver.name,
                                        Delivery.status == "pending")
            stmt = (sa.select(Alert)
                    .where(Alert.state == "firing", Alert.notified.is_(True), ~pending,
                           sa.or_(Alert.refreshed_at.is_(None), Alert.refreshed_at <= stale))
                    .order_by(Alert.id))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            silences = active_silences(session, at)
            count = 0
            for alert in session.scalars(stmt).all():
                if silenced_by(silences, alert.labels, at):
                    continue
                doc = alert_document(status="firing", labels=alert.labels, annotations=alert.annotations,
                                     starts_at=aware(alert.starts_at), ends_at=None,
                                     generator_url=alert.generator_url, fingerprint=alert.fingerprint)
                try:
                    send(receiver, doc, self.config, at, self.http)
                except DeliveryError as exc:
                    log.warning("alertmanager refresh failed", extra={"receiver": receiver.name,
                                                                      "error": str(exc)})
                    down.add(receiver.name)
                    break
                alert.refreshed_at = at
                count += 1
            return count


def deliver_pending(session_factory: sessionmaker, settings: Any, *, now: Callable[[], datetime] = utcnow,
                    http: requests.Session | None = None) -> CycleStats:
    """One delivery cycle with a fresh worker (tests, one-shot CLI use). ``settings`` may be
    ``MonitorSettings`` or an ``AlertConfig``."""
    config = settings if isinstance(settings, AlertConfig) else AlertConfig.from_settings(settings)
    return DeliveryWorker(session_factory, config, http=http).run_cycle(now)
