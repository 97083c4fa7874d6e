"""The work units of scheduled rounds on PostgreSQL: every replica evaluates, each unit once.

A unit is one model in one slot (its simulated batch, or its S3 inbox's pending files). At a tick
every monitor process *plans* the slot (the first to find it unplanned lists the champions and their
versions in one registry call and inserts one row per model; the others' inserts are no-ops), then
*claims* pending units a few at a time (``monitor.claims``: ``FOR UPDATE SKIP LOCKED`` plus a lease)
until none is left, preferring models whose version it has loaded already, so warm caches stay warm
and a round splits evenly. A claimer that dies leaves its units leased; once the lease ends the
others take them (they wait for it within the round). Each evaluation stays unique per (model,
batch id), so a unit redone after a lease expired or a crash between the evaluation's commit and the
unit's is answered by the stored evaluation: nothing is evaluated or logged twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import sessionmaker

from monitor.claims import lease_free, release
from monitor.db import utcnow
from monitor.models import WorkClaim
from monitor.registry import Listed

HORIZON_SLOTS = 2  # a unit left by a dead replica is still taken up to this many slots later
KEEP_SLOTS = 2000  # finished units older than this many slots are pruned by the planner


@dataclass(frozen=True)
class Unit:
    id: int
    slot: int
    model_name: str
    model_version: str | None
    # The model's aliases and tags from the planner's listing (``Registry.listing``; None: not listed).
    listed: Listed | None = None


class RoundClaims:
    def __init__(self, sessions: sessionmaker, owner: str, lease_seconds: float, batch_size: int) -> None:
        self.sessions = sessions
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size

    def plan(self, slot: int, list_models: Callable[[], dict[str, str | None]],
             listed: Callable[[str], Listed | None] = lambda name: None) -> list[tuple[str, int]]:
        """Insert the slot's units unless someone did. ``list_models`` (name -> version the alias
        points at, None if unknown) is called only then; ``listed`` gives a model's aliases and
        tags from the same listing, kept on its unit for the claimer. Returns the (model, slot)
        units this call gave up on: still pending more than ``HORIZON_SLOTS`` slots later
        (replicas too busy or down), marked ``expired`` for the caller to record as missed slots."""
        with self.sessions() as session:
            if session.scalar(sa.select(WorkClaim.id).where(WorkClaim.slot == slot).limit(1)) is not None:
                return []
        models = list_models()
        now = utcnow()
        rows = [{"slot": slot, "model_name": name, "model_version": version, "status": "pending",
                 "attempts": 0, "created_at": now, "listed": _stored(listed(name))}
                for name, version in sorted(models.items())]
        with self.sessions() as session, session.begin():
            if rows:
                from sqlalchemy.dialects.postgresql import insert

                session.execute(insert(WorkClaim).on_conflict_do_nothing(
                    index_elements=["slot", "model_name"]), rows)
            session.execute(sa.delete(WorkClaim).where(WorkClaim.status != "pending",
                                                       WorkClaim.slot < slot - KEEP_SLOTS))
            stale = session.execute(
                sa.select(WorkClaim.id, WorkClaim.model_name, WorkClaim.slot)
                .where(WorkClaim.status == "pending", WorkClaim.slot < slot - HORIZON_SLOTS)
                .with_for_update(skip_locked=True)).all()
            if stale:
                session.execute(sa.update(WorkClaim).where(WorkClaim.id.in_([r.id for r in stale]))
                                .values(status="expired", done_at=now)
                                .execution_options(synchronize_session=False))
        return [(r.model_name, int(r.slot)) for r in stale]

    def _window(self, slot: int) -> list[sa.ColumnElement[bool]]:
        return [WorkClaim.status == "pending", WorkClaim.slot.between(slot - HORIZON_SLOTS, slot)]

    def claim(self, slot: int, prefer: Iterable[str] = ()) -> list[Unit]:
        """Up to ``batch_size`` pending units of this slot (or of the last few, left by a dead
        replica), this process's cached models first.

        One statement, one round trip: ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
        RETURNING`` picks, leases and reads the units. The preferred names go as one array
        parameter, not an IN list: a warm replica prefers every model, and 1,000 bound names per
        claim (200 claims a round) were quadratic in the number of models."""
        now = utcnow()
        preferred = sorted(set(prefer))
        order: list = [WorkClaim.slot]  # an older slot's units first: finish the round that is late
        if preferred:
            names = sa.bindparam("preferred", preferred, type_=ARRAY(sa.String))
            order.append(sa.case((WorkClaim.model_name == sa.func.any(names), 0), else_=1))
        pick = (sa.select(WorkClaim.id).where(*self._window(slot), lease_free(WorkClaim, now))
                .order_by(*order, WorkClaim.id).limit(self.batch_size).with_for_update(skip_locked=True))
        statement = (sa.update(WorkClaim).where(WorkClaim.id.in_(pick.scalar_subquery()))
                     .values(lease_owner=self.owner, lease_until=now + self.lease,
                             attempts=WorkClaim.attempts + 1)
                     .returning(WorkClaim.id, WorkClaim.slot, WorkClaim.model_name, WorkClaim.model_version,
                                WorkClaim.listed)
                     .execution_options(synchronize_session=False))
        with self.sessions() as session, session.begin():
            found = session.execute(statement).all()
        return [Unit(row.id, row.slot, row.model_name, row.model_version, _listed(row.listed))
                for row in sorted(found, key=lambda row: row.id)]

    def finish(self, results: list[tuple[Unit, str, int]]) -> None:
        """Mark units done (or ``failed``: evaluated with a transient failure, reopened by a
        catch-up), with how many evaluations each produced. One statement for the batch."""
        if not results:
            return
        now = utcnow()
        table = WorkClaim.__table__
        statement = (sa.update(table).where(table.c.id == sa.bindparam("unit_id"),
                                            table.c.lease_owner == self.owner)
                     .values(status=sa.bindparam("new_status"), evaluations=sa.bindparam("count"),
                             done_by=self.owner, done_at=now, lease_owner=None, lease_until=None))
        with self.sessions() as session, session.begin():
            session.connection().execute(statement, [{"unit_id": unit.id, "new_status": status, "count": n}
                                                     for unit, status, n in results])

    def renew(self, units: list[Unit]) -> None:
        """Extend the lease on units still to do (a slow batch, e.g. cold model loads)."""
        if not units:
            return
        with self.sessions() as session, session.begin():
            session.execute(sa.update(WorkClaim).where(WorkClaim.id.in_([u.id for u in units]),
                                                       WorkClaim.lease_owner == self.owner)
                            .values(lease_until=utcnow() + self.lease)
                            .execution_options(synchronize_session=False))

    def release(self, units: list[Unit]) -> None:
        release(self.sessions, WorkClaim, [u.id for u in units], self.owner)

    def next_free(self, slot: int) -> datetime | None:
        """When the earliest unit leased by someone else frees up; None when no unit is pending."""
        with self.sessions() as session:
            return session.scalar(sa.select(sa.func.min(WorkClaim.lease_until)).where(*self._window(slot)))

    def pending(self, slot: int) -> int:
        with self.sessions() as session:
            return int(session.scalar(sa.select(sa.func.count()).where(*self._window(slot))) or 0)

    def reopen_failed(self, slot: int) -> int:
        """A dependency is back: units of this slot that failed transiently are pending again."""
        with self.sessions() as session, session.begin():
            return session.execute(sa.update(WorkClaim).where(WorkClaim.slot == slot,
                                                              WorkClaim.status == "failed")
                                   .values(status="pending", lease_owner=None, lease_until=None)
                                   .execution_options(synchronize_session=False)).rowcount


def _stored(listed: Listed | None) -> dict | None:
    return None if listed is None else {"aliases": listed[0], "tags": listed[1]}


def _listed(stored: dict | None) -> Listed | None:
    if not isinstance(stored, dict):
        return None
    return dict(stored.get("aliases") or {}), dict(stored.get("tags") or {})
