"""Missed scheduler slots: which (model, slot) a round could not evaluate, why, and what caught it up.

A round that cannot list the models (tracking down), or skips a model (backing off, database or S3
inbox down, or an evaluation that failed for a transient reason) records one row per model and slot
(model ``*`` when the model list itself was unavailable). The next evaluation that finishes for a
model marks its open rows caught up with that slot and evaluation: the scheduler evaluates the latest
batch, it does not replay every slot of an outage (an S3 inbox keeps its files, so nothing there is
skipped; simulated slots are demo data).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from monitor.models import MissedSlot

log = logging.getLogger(__name__)
ALL_MODELS = "*"


def record_missed(sessions: sessionmaker, entries: Iterable[tuple[str, int, str, str | None]],
                  at: datetime) -> int:
    """Insert (model, slot, reason, dependency) rows not recorded yet; returns how many were new."""
    entries = list(entries)
    if not entries:
        return 0
    with sessions() as session, session.begin():
        slots = {slot for _, slot, _, _ in entries}
        existing = set(session.execute(sa.select(MissedSlot.model_name, MissedSlot.slot)
                                       .where(MissedSlot.slot.in_(slots))).all())
        fresh = []
        for model, slot, reason, dependency in entries:
            if (model, slot) in existing:
                continue
            existing.add((model, slot))
            fresh.append(MissedSlot(model_name=model, slot=slot, reason=reason[:2000], dependency=dependency,
                                    missed_at=at))
        session.add_all(fresh)
    return len(fresh)


def mark_caught_up(sessions: sessionmaker, model: str, slot: int, evaluation_id: int | None,
                   at: datetime) -> int:
    with sessions() as session, session.begin():
        return session.execute(
            sa.update(MissedSlot)
            .where(MissedSlot.model_name.in_((model, ALL_MODELS)), MissedSlot.caught_up_at.is_(None),
                   MissedSlot.slot <= slot)
            .values(caught_up_slot=slot, caught_up_evaluation_id=evaluation_id, caught_up_at=at)
            .execution_options(synchronize_session=False)).rowcount


def list_missed(session: Session, model: str | None = None, open_only: bool = False,
                limit: int = 100) -> list[dict[str, Any]]:
    stmt = sa.select(MissedSlot).order_by(MissedSlot.id.desc()).limit(limit)
    if model:
        stmt = stmt.where(MissedSlot.model_name.in_((model, ALL_MODELS)))
    if open_only:
        stmt = stmt.where(MissedSlot.caught_up_at.is_(None))
    return [row.as_dict() for row in session.scalars(stmt)]


def dependency_of(reason: str) -> str | None:
    text = reason.lower()
    if "tracking server" in text:
        return "tracking"
    if "database" in text:
        return "database"
    if "s3" in text or "inbox" in text:
        return "s3_inbox"
    return None
