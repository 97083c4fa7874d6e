"""The MLflow monitoring run of each ok evaluation, logged after the response through an outbox.

An evaluation's transaction adds a ``monitoring_runs`` row (``enqueue``); once it commits, the push
or round wakes this process's background logger (``wake``), which claims due rows and logs each
through ``Registry.log_evaluation``. Guarantees:

- Nothing lost: the row is durable with the evaluation. A process that dies leaves it pending; the
  next logger (any worker after a restart, the leader's periodic sweep) takes it.
- One run per evaluation: claims are exclusive (``FOR UPDATE SKIP LOCKED`` held while logging on
  PostgreSQL, so a crash releases the row at once; on SQLite a lease claim (``monitor.claims``,
  shared with the rounds' work units) released by ``serve`` at start). The MLflow run carries the
  row's ``run_key``; a run created before a crash is found by that key and finished (or, if
  finished already, just recorded), never created twice. The search by key runs only when an
  earlier attempt may have created the run: on SQLite the claim commits ``attempts + 1`` before
  any MLflow call; on PostgreSQL (the row lock is held, uncommitted, while logging) a
  ``monitoring_run_starts`` mark is committed on another connection first. A first attempt costs
  four tracking calls (``Registry.log_evaluation``).
- The evaluation row gets its ``mlflow_run_id`` when the run is finished.

Who logs (``MONITOR_RUN_LOGGER``): ``process`` (the default of ``serve``) is one side process per
monitor instance, started and restarted by the gunicorn master (monitor/run_logger_process.py), so
the request workers spend no CPU on MLflow; ``thread`` is a background thread of each process that
evaluates (woken after each commit; the leader also sweeps every ``SWEEP_SECONDS``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from monitor import late_metrics
from monitor.claims import claim
from monitor.db import utcnow
from monitor.models import Evaluation, MonitoringRun, MonitoringRunStart
from monitor.registry import Registry

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=300)  # longer than MLflow's bounded retries for one run (4 calls)
BACKOFF_MAX_SECONDS = 300.0
SWEEP_SECONDS = 10.0  # the leader's periodic pass: retries and rows of processes that died
YIELD_SECONDS = 0.5  # the longest the background logger waits for running evaluations, per run
ARRIVING_SECONDS = 0.25  # a push queued its run this recently: pushes are arriving (the side process)
PUSH_YIELD_SECONDS = 2.0  # the side process's longest wait per run while pushes arrive


def enqueue(session: Session, evaluation: Evaluation, payload: dict[str, Any]) -> None:
    """Queue the run in the evaluation's transaction (commits or rolls back with it): a Core INSERT,
    the ORM's unit of work for one row being most of its cost on the push path."""
    session.execute(sa.insert(MonitoringRun.__table__).values(  # status, attempts, times: defaults
        evaluation_id=evaluation.id, run_key=uuid.uuid4().hex, payload=payload))


def release_leases(sessions: sessionmaker) -> int:
    """Free every SQLite lease: called by ``serve`` before any worker starts (local mode, one host)."""
    with sessions() as session, session.begin():
        return session.execute(sa.update(MonitoringRun).where(MonitoringRun.status == "pending")
                               .values(lease_owner=None, lease_until=None)).rowcount


def backlog(session: Session) -> tuple[int, float]:
    """Pending runs and the age in seconds of the oldest one (0 when none)."""
    count, oldest = session.execute(sa.select(sa.func.count(), sa.func.min(MonitoringRun.created_at))
                                    .where(MonitoringRun.status == "pending")).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=utcnow().tzinfo)
    return int(count), max(0.0, (utcnow() - oldest).total_seconds())


class RunLogger:
    """Logs due outbox rows to MLflow; ``wake`` runs it in one background thread per process."""

    def __init__(self, sessions: sessionmaker, registry: Registry) -> None:
        self.sessions = sessions
        self.registry = registry
        self.owner = uuid.uuid4().hex
        self.logged = 0
        self._lock = threading.Lock()
        self._evaluating = 0  # evaluations running in this process (``busy``)
        self._thread: threading.Thread | None = None
        self._again = False
        self._stopping = False
        self._pid = os.getpid()
        self._holds = 0
        self._woken_while_held = False

    # --- one pass ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Around an evaluation: the background logger gives way while any runs (``YIELD_SECONDS``)."""
        with self._lock:
            self._evaluating += 1
        try:
            yield
        finally:
            with self._lock:
                self._evaluating -= 1

    def _give_way(self) -> None:
        """Wait while evaluations run in this process, at most ``YIELD_SECONDS`` per run: logging a
        run costs the worker (and the tracking server on the same host) more CPU than a small push,
        so under a full load the pushes go first and the outbox still drains at least one run per
        ``YIELD_SECONDS`` per worker, the rest as soon as the load pauses (backlog in /metrics)."""
        deadline = time.monotonic() + YIELD_SECONDS
        while self._evaluating and not self._stopping and time.monotonic() < deadline:
            time.sleep(0.01)

    def _give_way_to_pushes(self, stop: threading.Event | None = None) -> None:
        """The side process's way (it cannot see the workers' requests): wait while pushes keep
        queueing runs (the newest run, of a push, queued less than ``ARRIVING_SECONDS`` ago), at most
        ``PUSH_YIELD_SECONDS`` per run. Measured on 2 cores (bench/push_path.py, 8 clients): logging
        took the run logger ~17 ms and the tracking server ~37 ms of CPU per run, a third of the
        host while pushes were waiting for it; their runs are durable in the outbox either way, and
        the backlog is in /metrics."""
        deadline = time.monotonic() + PUSH_YIELD_SECONDS
        while not self._stopping and (stop is None or not stop.is_set()) \
                and time.monotonic() < deadline and self._pushes_arriving():
            time.sleep(0.05)

    def _pushes_arriving(self) -> bool:
        with self.sessions() as session:
            newest = session.execute(
                sa.select(MonitoringRun.created_at, Evaluation.source)
                .join(Evaluation, Evaluation.id == MonitoringRun.evaluation_id)
                .order_by(MonitoringRun.id.desc()).limit(1)).first()
        if newest is None or newest.source != "push" or newest.created_at is None:
            return False
        created = newest.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=utcnow().tzinfo)
        return (utcnow() - created).total_seconds() < ARRIVING_SECONDS

    def log_due(self, give_way: bool = False, stop: threading.Event | None = None,
                give_way_to_pushes: bool = False) -> int:
        """Log every due row this process can claim; returns how many runs were finished.
        ``give_way``: to this process's evaluations (the thread logger); ``give_way_to_pushes``: to
        pushes arriving at any process (the side process)."""
        done = 0
        while not self._stopping and not self._holds:  # a round here: its end wakes us again
            if stop is not None and stop.is_set():
                return done
            if give_way:
                self._give_way()
            if give_way_to_pushes:
                self._give_way_to_pushes(stop)
            locked = self._dialect() == "postgresql"
            progressed = self._one_locked() if locked else self._one_leased()
            if progressed is None:  # then figures that came with late labels (monitor.late_metrics)
                return done + late_metrics.log_due(self.sessions, self.registry, self.owner,
                                                   stop=lambda: self._stopping or bool(self._holds))
            done += progressed
        return done

    def _dialect(self) -> str:
        return self.sessions.kw["bind"].dialect.name

    @staticmethod
    def _due_where() -> list[sa.ColumnElement[bool]]:
        return [MonitoringRun.status == "pending", MonitoringRun.next_attempt_at <= utcnow()]

    def _due(self) -> sa.Select:
        return sa.select(MonitoringRun).where(*self._due_where()).order_by(MonitoringRun.id).limit(1)

    def _one_locked(self) -> int | None:
        with self.sessions() as session, session.begin():
            row = session.scalar(self._due().with_for_update(skip_locked=True))
            if row is None:
                return None
            search = False
            if not row.payload.get("late"):  # a late row's logging is idempotent by its own key
                search = self._mark_started(row.run_key)
            row.attempts += 1
            return self._log(session, row, search=search)  # the row lock is held until this commit

    def _mark_started(self, run_key: str) -> bool:
        """Commit a mark that this run's creation may begin, on a connection of its own (the row's
        lock stays held); True when a mark was there already: an earlier attempt may have created
        the run, so it is searched for by its key."""
        with self.sessions.kw["bind"].connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            taken = conn.execute(sa.select(MonitoringRunStart.run_key)
                                 .where(MonitoringRunStart.run_key == run_key)).first()
            if taken is None:
                conn.execute(sa.insert(MonitoringRunStart).values(run_key=run_key, started_at=utcnow()))
        return taken is not None

    def _one_leased(self) -> int | None:
        # ``attempts + 1`` commits with the claim, before any MLflow call: a logger that dies
        # mid-run leaves attempts > 1 for the next one, which then searches by the run key.
        claimed = claim(self.sessions, MonitoringRun, where=self._due_where(), order_by=[MonitoringRun.id],
                        owner=self.owner, lease=LEASE, values={"attempts": MonitoringRun.attempts + 1})
        if not claimed:
            return None
        with self.sessions() as session, session.begin():
            row = session.get(MonitoringRun, claimed[0], populate_existing=True)
            result = self._log(session, row, search=row.attempts > 1)
            row.lease_owner, row.lease_until = None, None
            return result

    def _log(self, session: Session, row: MonitoringRun, *, search: bool) -> int:
        payload = row.payload
        try:
            if payload.get("late"):  # labels came after the run was logged (monitor/labels.py)
                late = payload["late"]
                run_id = self.registry.log_late(run_id=late["run_id"], metrics=late["metrics"],
                                                result=late["result"], key=late["key"])
            else:
                run_id = self.registry.log_evaluation(
                    model=payload["model"], version=payload["version"], batch_id=payload["batch_id"],
                    metrics=payload["metrics"], result=payload["result"], tags=payload["tags"],
                    run_key=row.run_key, search=search)
        except Exception as exc:  # noqa: BLE001 - tracking down or a bad answer: retry with backoff
            delay = min(BACKOFF_MAX_SECONDS, 2.0 ** min(row.attempts, 12))
            row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            row.last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            log.warning("monitoring run for evaluation %s not logged (attempt %s): %s", row.evaluation_id,
                        row.attempts, row.last_error)
            return 0
        row.status, row.run_id, row.done_at, row.last_error = "done", run_id, utcnow(), None
        session.execute(sa.delete(MonitoringRunStart).where(MonitoringRunStart.run_key == row.run_key))
        session.execute(sa.update(Evaluation).where(Evaluation.id == row.evaluation_id)
                        .values(mlflow_run_id=run_id).execution_options(synchronize_session=False))
        self.logged += 1
        return 1

    # --- the background thread --------------------------------------------------------------------
    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Defer background logging while a scheduled round evaluates: the round's verdicts (and
        alerts) come first, its MLflow runs right after it (the rows are durable either way)."""
        with self._lock:
            self._holds += 1
            if self._thread is not None:
                self._woken_while_held = True  # the running pass stops at its next row: resume after
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                wake = self._holds == 0 and self._woken_while_held
                if wake:
                    self._woken_while_held = False
            if wake:
                self.wake()

    def wake(self) -> None:
        """Log due rows now in the background; never blocks and never raises."""
        try:
            with self._lock:
                if self._holds:
                    self._woken_while_held = True
                    return
                if self._pid != os.getpid():  # forked: the parent's thread does not exist here
                    self._pid, self._thread, self._again = os.getpid(), None, False
                if self._thread is not None:
                    self._again = True
                    return
                self._again = False
                self._thread = threading.Thread(target=self._run, name="monitoring-runs", daemon=True)
                self._thread.start()
        except Exception:  # noqa: BLE001 - the periodic sweep logs it instead
            log.exception("cannot start the monitoring run logger; the periodic sweep will log the runs")
            with self._lock:
                self._thread = None

    def sweep(self) -> None:
        """The leader's periodic job: retries and rows left by processes that died."""
        if self._holds:
            return  # a round is evaluating here: its end wakes the logger
        try:
            self.log_due()
        except Exception:  # noqa: BLE001 - a database blip: next sweep
            log.exception("monitoring run sweep failed")

    def _run(self) -> None:
        while True:
            try:
                self.log_due(give_way=True)
            except Exception:  # noqa: BLE001 - a database blip: the sweep retries
                log.exception("monitoring run logger failed; the periodic sweep will retry")
            with self._lock:
                if not self._again or self._stopping:
                    self._thread = None
                    return
                self._again = False

    def drain(self, timeout: float = 10.0) -> None:
        """Stop after the run being logged and wait for the thread (rows left stay pending)."""
        with self._lock:
            thread = self._thread
            if thread is None or thread is threading.current_thread():
                return
            self._stopping = True
        thread.join(timeout)
        with self._lock:
            self._stopping = False


class RunBacklogCollector:
    """/metrics: how many MLflow runs wait in the outbox and how old the oldest is."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        try:
            with self.sessions() as session:
                count, age = backlog(session)
        except sa.exc.SQLAlchemyError:
            return  # driftline_monitor_database_up says why
        yield GaugeMetricFamily("driftline_monitoring_runs_backlog",
                                "MLflow monitoring runs queued and not logged yet", value=count)
        yield GaugeMetricFamily("driftline_monitoring_runs_oldest_pending_seconds",
                                "Age of the oldest queued MLflow monitoring run (0 when none)", value=age)
