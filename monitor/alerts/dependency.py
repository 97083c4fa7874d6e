"""``dependency_down``: an alert per dependency of the monitor (tracking server, database, S3 inbox,
each alert receiver) that has not answered for longer than ``down_after``.

Same alert model as the rules' alerts (labels → fingerprint, outbox, silences, repeat), driven by
probe results instead of evaluations:

- first failed probe: the alert goes ``pending`` with ``startsAt`` = that moment (the outage start);
- still failing ``down_after`` later: ``firing``, a history episode opens and every receiver except
  the one that is down is notified;
- the first probe that answers: ``resolved`` (notified if the firing was), or back to ``inactive``
  from pending (a blip shorter than ``down_after`` notifies nobody).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.alerts.engine import AlertEngine, _normalise_times
from monitor.alerts.episodes import close_episode, open_episode
from monitor.alerts.models import Alert
from monitor.alerts.rules import SERVICE, fingerprint

log = logging.getLogger("monitor.alerts")
ALERTNAME = "dependency_down"
SEVERITY = "critical"
DESCRIPTIONS = {
    "tracking": "the MLflow tracking server",
    "database": "the monitor's database",
    "s3_inbox": "the S3 inbox",
    "webhook": "the webhook receiver",
    "slack": "the Slack webhook",
    "alertmanager": "Alertmanager",
}


def dependency_labels(dependency: str) -> dict[str, str]:
    return {"alertname": ALERTNAME, "dependency": dependency, "severity": SEVERITY, "service": SERVICE}


def summary(dependency: str, since: datetime, problem: str) -> str:
    what = DESCRIPTIONS.get(dependency, dependency)
    return f"{what} ({dependency}) unreachable since {since.isoformat(timespec='seconds')}: {problem}"


class DependencyAlerts:
    def __init__(self, engine: AlertEngine, down_after: timedelta) -> None:
        self.engine = engine
        self.down_after = down_after

    def _lock(self, session: Session, fp: str) -> Alert | None:
        stmt = sa.select(Alert).where(Alert.fingerprint == fp)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return session.scalars(stmt).first()

    def observe(self, session: Session, dependency: str, problem: str | None, now: datetime,
                since: datetime | None = None) -> str | None:
        """Fold one probe result in; ``since`` backdates the outage start (the database's outage is
        recorded once it answers again). Returns "pending", "fired", "resolved" or None."""
        labels = dependency_labels(dependency)
        fp = fingerprint(labels)
        alert = self._lock(session, fp)
        if alert is None:
            if problem is None:
                return None
            alert = Alert(fingerprint=fp, alertname=ALERTNAME, model_name="", model_version="",
                          severity=SEVERITY, labels=labels, annotations={}, state="inactive", bad_streak=0,
                          clean_streak=0, notified=False, episodes=0)
            session.add(alert)
        _normalise_times(alert)
        if problem is not None:
            return self._down(session, alert, dependency, problem, now, since)
        return self._up(session, alert, dependency, now)

    def _down(self, session: Session, alert: Alert, dependency: str, problem: str, now: datetime,
              since: datetime | None) -> str | None:
        alert.bad_streak += 1
        alert.clean_streak = 0
        if alert.state not in ("pending", "firing"):
            alert.state, alert.starts_at, alert.ends_at = "pending", since or now, None
            alert.notified, alert.last_notified_at = False, None
        started = alert.starts_at or now
        alert.annotations = {"summary": summary(dependency, started, problem), "dependency": dependency,
                             "error": problem[:500],
                             "description": f"no answer for {(now - started).total_seconds():.0f} s "
                                            f"(alert after {self.down_after.total_seconds():.0f} s)"}
        if alert.state == "firing":
            return None
        if now - started < self.down_after:
            session.flush()
            return "pending"
        alert.state = "firing"
        alert.episodes = (alert.episodes or 0) + 1
        alert.fired_evaluation_id = None
        open_episode(session, alert, None, now)
        log.warning("dependency down", extra={"dependency": dependency, "since": started.isoformat()})
        self.engine.enqueue(session, alert, "firing", now, None, skip=frozenset({dependency}))
        return "fired"

    def _up(self, session: Session, alert: Alert, dependency: str, now: datetime) -> str | None:
        alert.clean_streak += 1
        alert.bad_streak = 0
        if alert.state == "pending":
            alert.state, alert.starts_at = "inactive", None
            return None
        if alert.state != "firing":
            return None
        alert.state, alert.ends_at = "resolved", now
        down_for = (now - (alert.starts_at or now)).total_seconds()
        resolved_by = f"{dependency} answered again after {down_for:.0f} s"
        alert.annotations = {**alert.annotations, "resolved_by": resolved_by}
        close_episode(session, alert, now, None, resolved_by)
        log.info("dependency back", extra={"dependency": dependency, "down_seconds": round(down_for)})
        if alert.notified:
            self.engine.enqueue(session, alert, "resolved", now, None, skip=frozenset({dependency}))
        return "resolved"

    # --- the database: held in memory while it is down -----------------------------------------------
    def outage_document(self, dependency: str, since: datetime, problem: str, status: str = "firing",
                        ends_at: datetime | None = None) -> dict:
        from monitor.alerts.payloads import alert_document

        labels = dependency_labels(dependency)
        return alert_document(status=status, labels=labels,
                              annotations={"summary": summary(dependency, since, problem),
                                           "dependency": dependency, "error": problem[:500]},
                              starts_at=since, ends_at=ends_at, generator_url=None,
                              fingerprint=fingerprint(labels))

    def notify_directly(self, dependency: str, since: datetime, problem: str,
                        notified: dict[str, datetime], now: datetime) -> None:
        """Tell every receiver not yet told, bypassing the outbox (it lives in the database that is
        down). ``notified`` is updated in place; a receiver that fails is tried again next check."""
        import requests

        from monitor.alerts.delivery import DeliveryError, send

        doc = self.outage_document(dependency, since, problem)
        with requests.Session() as http:
            for receiver in self.engine.config.receivers:
                if receiver.name in notified or receiver.name == dependency:
                    continue
                key = f"driftline-{dependency}-down-{int(since.timestamp())}-{receiver.name}"
                try:
                    send(receiver, doc, self.engine.config, now, http, idempotency_key=key)
                except DeliveryError as exc:
                    log.warning("direct outage notice failed", extra={"receiver": receiver.name,
                                                                      "error": str(exc)})
                    continue
                notified[receiver.name] = now
                log.warning("dependency down, receivers told directly",
                            extra={"dependency": dependency, "receiver": receiver.name})

    def record_outage(self, session: Session, dependency: str, since: datetime, until: datetime,
                      problem: str, notified: dict[str, datetime]) -> None:
        """Write an outage that happened while nothing could be written: the alert, its episode, the
        notices already sent (as sent rows) and the resolved notices for those receivers."""
        from monitor.alerts.models import Delivery

        if until - since < self.down_after and not notified:
            return  # a blip: nobody was told, nothing to remember
        labels = dependency_labels(dependency)
        fp = fingerprint(labels)
        alert = self._lock(session, fp)
        if alert is None:
            alert = Alert(fingerprint=fp, alertname=ALERTNAME, model_name="", model_version="",
                          severity=SEVERITY, labels=labels, annotations={}, state="inactive", bad_streak=0,
                          clean_streak=0, notified=False, episodes=0)
            session.add(alert)
        _normalise_times(alert)
        alert.state, alert.starts_at, alert.ends_at = "firing", since, None
        alert.annotations = {"summary": summary(dependency, since, problem), "dependency": dependency,
                             "error": problem[:500]}
        alert.episodes = (alert.episodes or 0) + 1
        alert.fired_evaluation_id = None
        open_episode(session, alert, None, since)
        session.flush()
        firing = self.outage_document(dependency, since, problem)
        for receiver, sent_at in notified.items():
            session.add(Delivery(alert_id=alert.id, fingerprint=fp, receiver=receiver, kind="firing",
                                 evaluation_id=None, alert=firing, status="sent", attempts=1,
                                 failed_attempts=0, next_attempt_at=sent_at, created_at=sent_at,
                                 sent_at=sent_at))
        alert.notified = bool(notified)
        alert.last_notified_at = max(notified.values()) if notified else None
        alert.state, alert.ends_at = "resolved", until
        resolved_by = f"{dependency} answered again after {(until - since).total_seconds():.0f} s"
        alert.annotations = {**alert.annotations, "resolved_by": resolved_by}
        close_episode(session, alert, until, None, resolved_by)
        if notified:
            told = frozenset(notified)
            skip = frozenset(r.name for r in self.engine.config.receivers if r.name not in told)
            self.engine.enqueue(session, alert, "resolved", until, None, skip=skip)
