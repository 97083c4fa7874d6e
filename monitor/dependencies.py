"""Watching the monitor's dependencies: probes, outage state, and ``dependency_down`` alerts.

Every ``MONITOR_DEPENDENCY_CHECK_SECONDS`` the scheduler leader probes the tracking server
(``/health``), the monitor's database (``SELECT 1``), the S3 inbox buckets (``HeadBucket``, only when
an inbox is configured) and every alert receiver (a TCP connect, Alertmanager's ``/-/healthy``; a
receiver whose outbox rows keep failing counts as down too). Results go through
``monitor.alerts.dependency`` (pending → firing after ``MONITOR_DEPENDENCY_DOWN_AFTER_SECONDS`` →
resolved), in the database like every other alert.

The database itself cannot hold its own outage: while it is down the watch keeps the outage in
memory, notifies the receivers directly once it has lasted ``down_after`` (each at most once per
outage, with an ``Idempotency-Key``), and writes the episode, the sent notifications and the resolved
notices when the database answers again. The process that was leader when the lock's connection
died keeps watching through the outage, so exactly one process does this.

When a dependency comes back, ``on_recovered`` runs (the scheduler catches up at once instead of
waiting for its next tick and its backoff).
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa

from monitor.db import utcnow

log = logging.getLogger(__name__)
PROBE_TIMEOUT = 3.0
CORE = ("tracking", "database", "s3_inbox")  # every other probe is an alert receiver


@dataclass(frozen=True)
class Probe:
    name: str
    check: Callable[[], str | None]  # None when the dependency answers, else why not (no secrets)


def tcp_probe(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Can we open a connection to the URL's host and port? Sends nothing (a receiver gets no noise)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"connection failed: {exc.strerror or type(exc).__name__}"


def http_probe(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - configured URL
            return None if 200 <= resp.status < 300 else f"answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"answered HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - the message may hold the URL: keep only the kind
        reason = getattr(exc, "reason", None)
        return f"unreachable: {getattr(reason, 'strerror', None) or type(reason or exc).__name__}"


def database_probe(engine: sa.Engine) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means down
            return f"unreachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"

    return check


def inbox_buckets(settings: Any, config: Any) -> list[str]:
    from monitor.sources.s3_inbox import parse_inbox

    uris = [settings.s3_inbox] if settings.s3_inbox else []
    uris += [m.s3_inbox for m in config.models if m.s3_inbox]
    buckets = set()
    for uri in uris:
        try:
            bucket, _ = parse_inbox(uri)
        except ValueError:
            continue
        if "{" not in bucket:
            buckets.add(bucket)
    return sorted(buckets)


def s3_probe(inbox: Any, buckets: list[str]) -> Callable[[], str | None]:
    def check() -> str | None:
        for bucket in buckets:
            try:
                inbox.client().head_bucket(Bucket=bucket)
            except Exception as exc:  # noqa: BLE001 - botocore raises many kinds
                return f"bucket {bucket} unreachable: {type(exc).__name__}"
        return None

    return check


def build_probes(monitor: Any, receivers: tuple = ()) -> list[Probe]:
    """The probes of one monitor app: tracking, database, S3 inbox (if any), each receiver with a URL."""
    probes = [Probe("tracking", monitor.registry.ping), Probe("database", database_probe(monitor.engine))]
    buckets = inbox_buckets(monitor.settings, monitor.config)
    if buckets:
        probes.append(Probe("s3_inbox", s3_probe(monitor.inbox, buckets)))
    for receiver in receivers:
        if receiver.url is None:
            continue
        url = receiver.url.get_secret_value()
        if receiver.kind == "alertmanager":
            probes.append(Probe(receiver.name, lambda u=url: http_probe(u.rstrip("/") + "/-/healthy")))
        else:
            probes.append(Probe(receiver.name, lambda u=url: tcp_probe(u)))
    return probes


@dataclass
class DatabaseOutage:
    """The database's outage as kept in memory until the database can record it."""

    since: datetime
    problem: str
    notified: dict[str, datetime] = field(default_factory=dict)  # receiver → when it was told


class DependencyWatch:
    def __init__(self, probes: list[Probe], sessions: Any, down_after: timedelta,
                 alerts: Any = None, on_recovered: Callable[[str], None] | None = None) -> None:
        self.probes = probes
        self.sessions = sessions
        self.down_after = down_after
        self.alerts = alerts  # monitor.alerts.dependency.DependencyAlerts, None without the alerts
        self.on_recovered = on_recovered
        self.down_since: dict[str, datetime] = {}
        self.problems: dict[str, str] = {}
        self.checked_at: datetime | None = None
        self.database_outage: DatabaseOutage | None = None
        self._probe_failed: set[str] = set()  # probes (not the outbox) that failed at the last check
        self._lock = threading.Lock()

    # --- what the API shows ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            return {p.name: {"up": p.name not in self.down_since,
                             "down_since": self.down_since[p.name].isoformat() if p.name in self.down_since
                             else None,
                             "problem": self.problems.get(p.name)} for p in self.probes} | (
                {"checked_at": self.checked_at.isoformat()} if self.checked_at else {})

    @property
    def owes_record(self) -> bool:
        """A database outage is waiting to be written: keep running even when not the leader."""
        return self.database_outage is not None

    # --- one check ---------------------------------------------------------------------------------
    def check(self, now: Callable[[], datetime] = utcnow) -> dict[str, str | None]:
        with self._lock:
            return self._check(now)

    def _check(self, now: Callable[[], datetime]) -> dict[str, str | None]:
        results: dict[str, str | None] = {}
        for probe in self.probes:
            try:
                results[probe.name] = probe.check()
            except Exception as exc:  # noqa: BLE001 - a broken probe reports, never stops the watch
                results[probe.name] = f"probe failed: {type(exc).__name__}"
        at = now()
        self.checked_at = at
        # A receiver that accepts connections again gets its held-back rows now, even while the
        # outbox still says it failed: that retry is what tells whether it is really back.
        answering = [n for n, p in results.items() if p is None and n in self._probe_failed]
        self._probe_failed = {n for n, p in results.items() if p is not None}
        database_up = results.get("database") is None
        if database_up and self.alerts is not None:
            for name, problem in self._failing_receivers().items():
                if results.get(name, "") is None:
                    results[name] = problem
        recovered = [n for n, p in results.items() if p is None and n in self.down_since]
        for name, problem in results.items():
            if problem is None:
                self.down_since.pop(name, None)
                self.problems.pop(name, None)
            else:
                self.down_since.setdefault(name, at)
                self.problems[name] = problem
        if database_up:
            self._record(results, at)
        else:
            self._database_down(results["database"] or "unreachable", at)
        for name in answering:
            if name not in CORE and self.alerts is not None and database_up:
                self._retry_now(name, at)
        for name in recovered:
            log.info("dependency %s answers again", name)
            if self.on_recovered is not None:
                try:
                    self.on_recovered(name)
                except Exception:  # noqa: BLE001
                    log.exception("catching up after %s came back failed", name)
        return results

    def _retry_now(self, receiver: str, at: datetime) -> None:
        """A receiver is back: its held-back rows go now, not after the rest of their backoff."""
        from monitor.alerts.models import Delivery

        try:
            with self.sessions() as session, session.begin():
                session.execute(sa.update(Delivery)
                                .where(Delivery.receiver == receiver, Delivery.status == "pending",
                                       Delivery.next_attempt_at > at)
                                .values(next_attempt_at=at).execution_options(synchronize_session=False))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("cannot release %s's held-back deliveries: %s", receiver, type(exc).__name__)

    def _failing_receivers(self) -> dict[str, str]:
        """Receivers whose oldest undelivered row's last attempt failed: down even if they accept TCP."""
        from monitor.alerts.models import Delivery

        try:
            with self.sessions() as session:
                rows = session.execute(sa.select(Delivery.receiver, sa.func.max(Delivery.last_error))
                                       .where(Delivery.status == "pending", Delivery.failed_attempts > 0)
                                       .group_by(Delivery.receiver)).all()
        except sa.exc.SQLAlchemyError:
            return {}
        return {receiver: f"deliveries failing: {error}" for receiver, error in rows if error}

    def _record(self, results: dict[str, str | None], at: datetime) -> None:
        if self.alerts is None:
            self.database_outage = None
            return
        outage = self.database_outage
        try:
            with self.sessions() as session, session.begin():
                if outage is not None:
                    self.alerts.record_outage(session, "database", outage.since, at, outage.problem,
                                              outage.notified)
                for name, problem in results.items():
                    if name != "database":
                        self.alerts.observe(session, name, problem, at,
                                            since=self.down_since.get(name) if problem else None)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("cannot record dependency state: %s", type(exc).__name__)
            return
        self.database_outage = None

    def _database_down(self, problem: str, at: datetime) -> None:
        outage = self.database_outage
        if outage is None:
            outage = self.database_outage = DatabaseOutage(self.down_since.get("database", at), problem)
            log.warning("monitor database unreachable: %s", problem)
        if self.alerts is None or at - outage.since < self.down_after:
            return
        self.alerts.notify_directly("database", outage.since, problem, outage.notified, at)
