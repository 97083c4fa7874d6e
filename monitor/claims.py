"""Exclusive, leased claims on rows that several processes work through: the MLflow run outbox
(monitor.monitoring_runs) and the work units of scheduled rounds (monitor.work_units).

A claim picks due rows whose lease is free (never leased, or expired), writes ``lease_owner`` and
``lease_until`` and commits, so the claimer does the work outside any transaction and a claimer
that dies (SIGKILL, lost host) holds its rows only until the lease ends. On PostgreSQL the pick is
``SELECT … FOR UPDATE SKIP LOCKED``: concurrent claimers neither wait for each other nor pick the
same row. On SQLite (local mode, one host) a conditional UPDATE per row takes it only while its
lease is still free, which is just as exclusive, only slower under contention.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from monitor.db import utcnow


def lease_free(model: Any, now: Any) -> sa.ColumnElement[bool]:
    return sa.or_(model.lease_until.is_(None), model.lease_until < now)


def claim(sessions: sessionmaker, model: Any, *, where: Sequence[sa.ColumnElement[bool]],
          order_by: Sequence[Any], owner: str, lease: timedelta, limit: int = 1,
          values: dict[str, Any] | None = None) -> list[int]:
    """Claim up to ``limit`` rows of ``model`` matching ``where`` in ``order_by`` order for ``owner``
    until now + ``lease``; returns their ids (committed). ``values`` are set on the claimed rows too
    (e.g. ``{"attempts": Model.attempts + 1}``)."""
    now = utcnow()
    free = lease_free(model, now)
    update = {"lease_owner": owner, "lease_until": now + lease, **(values or {})}
    with sessions() as session, session.begin():
        pick = sa.select(model.id).where(*where, free).order_by(*order_by)
        if session.get_bind().dialect.name == "postgresql":
            ids = list(session.scalars(pick.limit(limit).with_for_update(skip_locked=True)))
            if ids:
                session.execute(sa.update(model).where(model.id.in_(ids)).values(**update)
                                .execution_options(synchronize_session=False))
            return ids
        ids = []
        # Others may take some candidates between the pick and the update: try a few more.
        for row_id in session.scalars(pick.limit(limit * 4)).all():
            taken = session.execute(sa.update(model).where(model.id == row_id, free).values(**update)
                                    .execution_options(synchronize_session=False)).rowcount
            if taken == 1:
                ids.append(row_id)
                if len(ids) >= limit:
                    break
        return ids


def release(sessions: sessionmaker, model: Any, ids: Sequence[int], owner: str) -> int:
    """Give claimed rows back at once (a draining process), so others need not wait for the lease."""
    if not ids:
        return 0
    with sessions() as session, session.begin():
        return session.execute(sa.update(model).where(model.id.in_(list(ids)), model.lease_owner == owner)
                               .values(lease_owner=None, lease_until=None)
                               .execution_options(synchronize_session=False)).rowcount
