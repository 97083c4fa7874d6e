"""Simulated batches from the seed's scenarios (seed_scenarios), following the demo cycle
(monitor.settings.DEFAULT_CYCLE: clean → data drift → clean → a persistent concept-drift regime → the
old world again) so a fresh local stack shows drift being found, cleared and retrained away.

The batch id is derived from the tick's time slot, so two replicas computing the same tick produce the
same id and collide on the evaluations' unique constraint instead of evaluating twice. The cycle's
position is counted from the stack's first simulated round (``first_slot``, read from the evaluations,
so every replica and every restart agree): `make up` always opens with the start of the story, not at
whatever point of a two-hour cycle the wall clock happens to be.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.sources import Batch

SEED_BASE = 1_000
PREFIX = "sim-"


def slot_batch_id(slot: int) -> str:
    return f"{PREFIX}{slot}"


def slot_batch(slot: int, cycle: Sequence[str], rows: int, start: int = 0) -> Batch:
    """The batch for a scheduler time slot: scenario from the cycle (counted from slot ``start``),
    seed from the slot."""
    from seed_scenarios import ScenarioParams, make_batch

    scenario = cycle[(slot - start) % len(cycle)]
    seed = SEED_BASE + slot % 1_000_000_007
    frame = make_batch(scenario, ScenarioParams(rows=rows, seed=seed))  # type: ignore[arg-type]
    return Batch(batch_id=slot_batch_id(slot), source="simulated", frame=frame, scenario=scenario,
                 meta={"slot": slot, "seed": seed})


def first_slot(session: Session) -> int | None:
    """The slot of the stack's first simulated evaluation (None before there is one).

    The oldest row by id: evaluations are never deleted, so the answer never changes once found."""
    from monitor.models import Evaluation

    batch_id = session.scalar(sa.select(Evaluation.batch_id).where(Evaluation.source == "simulated")
                              .order_by(Evaluation.id).limit(1))
    if batch_id is None or not batch_id.startswith(PREFIX):
        return None
    try:
        return int(batch_id[len(PREFIX):])
    except ValueError:
        return None


def manual_batch(scenario: str, rows: int, seed: int | None) -> Batch:
    """A batch on demand (POST /api/models/<name>/evaluate): its own id, never a slot's."""
    from seed_scenarios import SCENARIOS, ScenarioParams, make_batch

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    seed = seed if seed is not None else uuid.uuid4().int % 2**31
    frame = make_batch(scenario, ScenarioParams(rows=rows, seed=seed))  # type: ignore[arg-type]
    return Batch(batch_id=f"manual-{uuid.uuid4().hex[:12]}", source="manual", frame=frame,
                 scenario=scenario, meta={"seed": seed})
