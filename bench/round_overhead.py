"""The bookkeeping a warm round pays per model, apart from the evaluation itself, on a real PostgreSQL:
claiming the round's units and looking up model settings, old way against new.

- claims: N units planned, then claimed ``MONITOR_CLAIM_BATCH_SIZE`` (5) at a time by one process that
  prefers all N (a warm replica has every model cached) until none is left, and finished per batch.
  Old: ``monitor.claims.claim`` (SELECT … FOR UPDATE SKIP LOCKED + UPDATE, the N preferred names as
  an IN list of N bound parameters) plus a SELECT of the claimed rows. New: ``RoundClaims.claim``
  (one ``UPDATE … RETURNING`` statement, the names as one array parameter).
- config: ``MonitorConfig.model(name)`` five times per model (what a round asks), a scan of the
  configured models (old) against the dict (new).

Wall and CPU seconds of this process (time.process_time) per round, with the load average.

    .venv/bin/python bench/round_overhead.py --models 200,1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _old_claim(claims, slot: int, prefer: set[str]):  # noqa: ANN001, ANN202 - the code before this change
    import sqlalchemy as sa

    from monitor.claims import claim
    from monitor.models import WorkClaim
    from monitor.work_units import Unit

    preferred = sorted(prefer)
    order: list = [WorkClaim.slot, sa.case((WorkClaim.model_name.in_(preferred), 0), else_=1)]
    ids = claim(claims.sessions, WorkClaim, where=claims._window(slot), order_by=[*order, WorkClaim.id],
                owner=claims.owner, lease=claims.lease, limit=claims.batch_size,
                values={"attempts": WorkClaim.attempts + 1})
    if not ids:
        return []
    with claims.sessions() as session:
        found = session.execute(sa.select(WorkClaim.id, WorkClaim.slot, WorkClaim.model_name,
                                          WorkClaim.model_version).where(WorkClaim.id.in_(ids))
                                .order_by(WorkClaim.id)).all()
    return [Unit(*row) for row in found]


def claims_round(db: str, n: int, slot: int, old: bool) -> tuple[float, float, int]:
    from monitor.db import make_engine, make_session_factory
    from monitor.work_units import RoundClaims

    claims = RoundClaims(make_session_factory(make_engine(db)), f"{os.getpid()}:bench", 60.0, 5)
    names = {f"bench-{i:04d}": "1" for i in range(n)}
    claims.plan(slot, lambda: names)
    wall, cpu, taken = time.perf_counter(), time.process_time(), 0
    while True:
        units = _old_claim(claims, slot, set(names)) if old else claims.claim(slot, prefer=set(names))
        if not units:
            break
        taken += len(units)
        claims.finish([(u, "done", 1) for u in units])
    return time.perf_counter() - wall, time.process_time() - cpu, taken


def config_round(n: int, old: bool) -> tuple[float, float]:
    from monitor.settings import ModelConfig, MonitorConfig

    config = MonitorConfig(models=tuple(ModelConfig(name=f"bench-{i:04d}") for i in range(n)))

    def scan(name: str) -> ModelConfig:
        for model in config.models:
            if model.name == name:
                return model
        return ModelConfig(name=name)

    lookup = scan if old else config.model
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        for _ in range(5):
            lookup(f"bench-{i:04d}")
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="200,1000")
    args = parser.parse_args()
    from monitor.migrate import upgrade
    from tests.services import postgres

    db = postgres.create_database("benchclaims")
    try:
        upgrade(db)
        slot = 0
        for n in (int(x) for x in args.models.split(",")):
            for old in (True, False):
                slot += 1
                load = os.getloadavg()[0]
                wall, cpu, taken = claims_round(db, n, slot, old)
                assert taken == n, (taken, n)
                cwall, ccpu = config_round(n, old)
                print(f"{n:>5} models {'old' if old else 'new'}: claims {wall:6.2f} s wall {cpu:6.2f} s cpu "
                      f"({1000 * wall / n:.2f} ms/model wall); config look-ups {cwall:6.3f} s wall "
                      f"{ccpu:6.3f} s cpu; load {load:.1f}", flush=True)
    finally:
        postgres.drop_database(db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
