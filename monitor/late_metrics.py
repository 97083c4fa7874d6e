"""Late MLflow metrics: figures known only when a batch's labels came, logged into its run once.

The labels' transaction (``monitor.labels``) hands them over here, one ``late_run_metrics`` row per
evaluation (``queue``). The run logger (``monitor.monitoring_runs.RunLogger.log_due``) drains these rows
after its own outbox (``log_due``), and only rows whose monitoring run is ``done`` (the MLflow run
exists and has its id): a late row never races the logging of the run itself, so a run being logged
while its labels arrive cannot swallow them (on SQLite nothing locks the run row while it is logged).

Exactly once: ``Registry.log_late`` writes the metrics with the tag ``driftline.labels_key`` in one
``log_batch`` and a retry that finds the tag logs nothing again. Claims are leases (``monitor.claims``,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a failure backs off like the run outbox.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from monitor.claims import claim
from monitor.db import utcnow
from monitor.models import LateRunMetrics, MonitoringRun

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=300)
BACKOFF_MAX_SECONDS = 300.0


def queue(session: Session, evaluation_id: int, key: str, metrics: dict[str, float],
          result: dict[str, Any]) -> None:
    """In the labels' transaction (labels are final: one row per evaluation)."""
    session.add(LateRunMetrics(evaluation_id=evaluation_id, labels_key=key, status="pending", attempts=0,
                               next_attempt_at=utcnow(), payload={"metrics": metrics, "result": result}))


def _due_where() -> list[sa.ColumnElement[bool]]:
    run_done = sa.select(MonitoringRun.id).where(MonitoringRun.evaluation_id == LateRunMetrics.evaluation_id,
                                                 MonitoringRun.status == "done",
                                                 MonitoringRun.run_id.is_not(None))
    return [LateRunMetrics.status == "pending", LateRunMetrics.next_attempt_at <= utcnow(),
            run_done.exists()]


def log_due(sessions: sessionmaker, registry: Any, owner: str, stop: Any = lambda: False) -> int:
    """Log every due late row this process can claim into its run; returns how many were logged."""
    done = 0
    while not stop():
        claimed = claim(sessions, LateRunMetrics, where=_due_where(), order_by=[LateRunMetrics.id],
                        owner=owner, lease=LEASE, values={"attempts": LateRunMetrics.attempts + 1})
        if not claimed:
            return done
        with sessions() as session, session.begin():
            row = session.get(LateRunMetrics, claimed[0], populate_existing=True)
            run_id = session.scalar(sa.select(MonitoringRun.run_id)
                                    .where(MonitoringRun.evaluation_id == row.evaluation_id))
            try:
                registry.log_late(run_id=run_id, metrics=row.payload["metrics"], result=row.payload["result"],
                                  key=row.labels_key)
            except Exception as exc:  # noqa: BLE001 - tracking down: retry with backoff
                delay = min(BACKOFF_MAX_SECONDS, 2.0 ** min(row.attempts, 12))
                row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                row.last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                log.warning("late metrics of evaluation %s not logged (attempt %s): %s", row.evaluation_id,
                            row.attempts, row.last_error)
            else:
                row.status, row.done_at, row.last_error = "done", utcnow(), None
                done += 1
            row.lease_owner, row.lease_until = None, None
    return done
