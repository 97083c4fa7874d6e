"""Three monitor replicas (real `python -m monitor serve`, gunicorn) on one PostgreSQL share every
round of 200 models: each (model, batch) is evaluated once, all replicas take part, and the units a
SIGKILLed replica had claimed are finished by the others after the lease, nothing doubled.

200 registered models: one real training run and model upload, and 199 more registered models whose
version 1 points at the same logged model (``register_copies``): to the monitor each name is still
its own model (resolved, loaded, profiled). The scheduler's simulated batches are labelled, so a cold
round builds the drift profiles only: the label-free estimator (8 cross-fitted models, about 9 CPU s
each) is fitted at a version's first batch without labels (monitor/reference.py), which had made a
cold round of 200 outlast the test on 2 cores.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

from tests.monitor.helpers import register_copies
from tests.monitor.processes import rows, start_monitor, wait_for

MODELS = 200
LEASE_SECONDS = 20
INTERVAL = 90.0
# The three replicas took 16 s to start on a quiet machine; a round begins at each multiple of the
# interval, and a replica started after a round began joins the next one.
START_MARGIN = 45.0


def _group_pids(leader: int) -> set[int]:
    """Every process of a replica (gunicorn master and workers share its process group)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == leader:
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def _doubled(db: str) -> list:
    return rows(db, "SELECT model_name, batch_id, count(*) FROM evaluations GROUP BY 1, 2 "
                    "HAVING count(*) > 1")


def _complete_slots(db: str) -> list[int]:
    return [r[0] for r in rows(db, "SELECT slot FROM work_claims GROUP BY slot HAVING "
                                   "count(*) FILTER (WHERE status = 'done') = :n", n=MODELS)]


def _start_after_a_boundary() -> None:
    """Return with at least ``START_MARGIN`` s before the next round begins (waiting out this one if
    it begins sooner): the three replicas then all start before the round they are to split. Started
    across a boundary, two of them did the whole round before the third's first tick."""
    until_next = math.ceil(time.time() / INTERVAL) * INTERVAL - time.time()
    if until_next < START_MARGIN:
        time.sleep(until_next + 1.0)


def test_three_replicas_split_rounds_and_take_over_a_killed_ones_claims(tmp_path, monitor_db, tracking_server,
                                                                       mlflow_client, unique_name):
    prefix = unique_name("scale")
    names = [f"{prefix}-{i:03d}" for i in range(MODELS)]
    register_copies(mlflow_client, names)
    _start_after_a_boundary()
    replicas = [start_monitor(tmp_path, f"replica-{i}", db_url=monitor_db, tracking_url=tracking_server.url,
                              model=names, interval=INTERVAL, workers=1, MONITOR_SIMULATED_ROWS="200",
                              MONITOR_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS), MONITOR_CLAIM_BATCH_SIZE="2")
                for i in range(3)]
    procs = [proc for proc, _ in replicas]
    try:
        # A whole round done by the three together: the first to begin once all three were up.
        slot = math.ceil(time.time() / INTERVAL)  # the scheduler's slot of that boundary
        wait_for(lambda: slot in _complete_slots(monitor_db), timeout=720, what=f"round {slot} complete",
                 proc=procs[0])
        evaluated = rows(monitor_db, "SELECT count(*), count(DISTINCT model_name) FROM evaluations "
                                     "WHERE batch_id = :b AND status = 'ok'", b=f"sim-{slot}")
        assert evaluated[0] == (MODELS, MODELS)
        shares = dict(rows(monitor_db, "SELECT split_part(done_by, ':', 1), count(*) FROM work_claims "
                                       "WHERE slot = :s GROUP BY 1", s=slot))
        assert len(shares) == 3 and min(shares.values()) >= MODELS // 10, shares
        assert _doubled(monitor_db) == []

        # Kill one replica (SIGKILL, no drain) while it holds claimed, unfinished units.
        victim = procs[2]
        victim_pids = {str(pid) for pid in _group_pids(victim.proc.pid)}

        def victim_holds_units() -> bool:  # of the newest slot, so the others are still at it
            held = rows(monitor_db, "SELECT lease_owner FROM work_claims WHERE status = 'pending' "
                                    "AND lease_owner IS NOT NULL "
                                    "AND slot = (SELECT max(slot) FROM work_claims)")
            return any(owner.split(":")[0] in victim_pids for (owner,) in held)

        wait_for(victim_holds_units, timeout=240, what="the victim to hold claimed units", proc=victim)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        orphaned = rows(monitor_db, "SELECT id, slot, lease_until FROM work_claims "
                                    "WHERE status = 'pending' AND lease_owner IS NOT NULL "
                                    "AND split_part(lease_owner, ':', 1) IN :pids", pids=tuple(victim_pids))
        assert orphaned, "the victim held no unit when it was killed"
        ids = tuple(i for i, _, _ in orphaned)
        lease_ends = {i: until for i, _, until in orphaned}
        done = "SELECT count(*) FROM work_claims WHERE id IN :ids AND status = 'done'"
        wait_for(lambda: rows(monitor_db, done, ids=ids)[0][0] == len(ids),
                 timeout=120, what="the killed replica's units to be done by the others", proc=procs[0])
        taken_over = rows(monitor_db, "SELECT id, done_by, done_at, attempts FROM work_claims "
                                      "WHERE id IN :ids", ids=ids)
        for unit, by, done_at, attempts in taken_over:
            assert by.split(":")[0] not in victim_pids
            assert attempts >= 2 and done_at >= lease_ends[unit]  # claimed again once the lease ended
        # Their slot completes: every model evaluated once for it, by whoever.
        for slot in {s for _, s, _ in orphaned}:
            wait_for(lambda s=slot: s in _complete_slots(monitor_db), timeout=120,
                     what=f"slot {slot} to complete", proc=procs[0])
            count = rows(monitor_db, "SELECT count(*) FROM evaluations WHERE batch_id = :b", b=f"sim-{slot}")
            assert count[0][0] == MODELS
        assert _doubled(monitor_db) == []
        assert all(proc.running for proc in procs[:2])
    finally:
        for proc in procs:
            proc.stop()
    # One MLflow run per evaluation: logged outbox rows carry distinct runs.
    runs = rows(monitor_db, "SELECT count(*), count(DISTINCT run_id) FROM monitoring_runs "
                            "WHERE status = 'done'")
    assert runs[0][0] == runs[0][1]
