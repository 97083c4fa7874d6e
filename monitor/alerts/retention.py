"""Retention of the alerts' history (``ALERT_HISTORY_RETENTION_DAYS``, default 90).

Sent and dropped outbox rows, resolved episodes and caught-up missed slots older than the retention
are deleted, and so are the rows kept for labels that never came (``batch_labels.data`` or its
``kept_row_parts``) and slices of kept rows no evaluation claimed within ``UNCLAIMED_PARTS``; pending
rows, open episodes and the ``alerts`` rows (each identity's current state) are
never pruned. Run by the delivery job on the scheduler leader, at most once per ``PRUNE_EVERY``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.alerts.models import AlertEpisode, Delivery
from monitor.models import BatchLabels, KeptRowPart, MissedSlot

PRUNE_EVERY = timedelta(hours=1)
# A push stages its slices seconds before its commit claims them: older unclaimed ones are leftovers
# of a push that died between the two.
UNCLAIMED_PARTS = timedelta(hours=1)


def prune(session: Session, now: datetime, keep: timedelta) -> dict[str, int]:
    cutoff = now - keep
    done = sa.func.coalesce(Delivery.sent_at, Delivery.created_at)
    deliveries = session.execute(sa.delete(Delivery).where(Delivery.status.in_(("sent", "dropped")),
                                                           done < cutoff)
                                 .execution_options(synchronize_session=False)).rowcount
    episodes = session.execute(sa.delete(AlertEpisode).where(AlertEpisode.ends_at.is_not(None),
                                                             AlertEpisode.ends_at < cutoff)
                               .execution_options(synchronize_session=False)).rowcount
    missed = session.execute(sa.delete(MissedSlot).where(MissedSlot.caught_up_at.is_not(None),
                                                         MissedSlot.caught_up_at < cutoff)
                             .execution_options(synchronize_session=False)).rowcount
    # Rows kept for labels that never came (monitor/labels.py): the evaluation stays, its rows go.
    unlabelled = session.execute(sa.update(BatchLabels).where(BatchLabels.data.is_not(None),
                                                              BatchLabels.created_at < cutoff)
                                 .values(data=None).execution_options(synchronize_session=False)).rowcount
    expired = sa.select(BatchLabels.id).where(BatchLabels.created_at < cutoff)
    parts = session.execute(sa.delete(KeptRowPart).where(sa.or_(
        KeptRowPart.batch_labels_id.in_(expired),
        sa.and_(KeptRowPart.batch_labels_id.is_(None), KeptRowPart.created_at < now - UNCLAIMED_PARTS)))
        .execution_options(synchronize_session=False))
    return {"deliveries": deliveries, "episodes": episodes, "missed_slots": missed,
            "unlabelled_batches": unlabelled, "kept_row_parts": parts.rowcount}
