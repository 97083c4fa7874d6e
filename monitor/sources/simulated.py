"""Simulated batches from the seed's scenarios (seed_scenarios), cycling clean → data drift →
clean → concept drift so a fresh local stack shows drift being found and cleared within minutes.

The batch id is derived from the tick's time slot, so two replicas computing the same tick produce the
same id and collide on the evaluations' unique constraint instead of evaluating twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from monitor.sources import Batch

SEED_BASE = 1_000


def slot_batch_id(slot: int) -> str:
    return f"sim-{slot}"


def slot_batch(slot: int, cycle: Sequence[str], rows: int) -> Batch:
    """The batch for a scheduler time slot: scenario from the cycle, seed from the slot."""
    from seed_scenarios import ScenarioParams, make_batch

    scenario = cycle[slot % len(cycle)]
    seed = SEED_BASE + slot % 1_000_000_007
    frame = make_batch(scenario, ScenarioParams(rows=rows, seed=seed))  # type: ignore[arg-type]
    return Batch(batch_id=slot_batch_id(slot), source="simulated", frame=frame, scenario=scenario,
                 meta={"slot": slot, "seed": seed})


def manual_batch(scenario: str, rows: int, seed: int | None) -> Batch:
    """A batch on demand (POST /api/models/<name>/evaluate): its own id, never a slot's."""
    from seed_scenarios import SCENARIOS, ScenarioParams, make_batch

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    seed = seed if seed is not None else uuid.uuid4().int % 2**31
    frame = make_batch(scenario, ScenarioParams(rows=rows, seed=seed))  # type: ignore[arg-type]
    return Batch(batch_id=f"manual-{uuid.uuid4().hex[:12]}", source="manual", frame=frame,
                 scenario=scenario, meta={"seed": seed})
