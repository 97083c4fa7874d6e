"""The rounds' work units on a real PostgreSQL database: planned once per slot, claimed exclusively,
older slots first, taken over after the lease, given back on drain, expired two slots later."""

from __future__ import annotations

import time

import sqlalchemy as sa

from monitor.db import make_engine, make_session_factory
from monitor.models import WorkClaim
from monitor.work_units import HORIZON_SLOTS, RoundClaims


def _claims(db: str, owner: str, lease: float = 30.0, batch: int = 3) -> RoundClaims:
    return RoundClaims(make_session_factory(make_engine(db)), owner, lease, batch)


def _models(n: int) -> dict[str, str | None]:
    return {f"m{i:02d}": "1" for i in range(n)}


def test_a_slot_is_planned_once_and_each_unit_claimed_by_one_process(monitor_db):
    a, b = _claims(monitor_db, "1:a"), _claims(monitor_db, "2:b")
    listed = []
    assert a.plan(10, lambda: listed.append("a") or _models(10)) == []
    assert b.plan(10, lambda: listed.append("b") or _models(10)) == []
    assert listed == ["a"]  # the second process found the slot planned: no registry listing
    taken: list[str] = []
    while True:
        got = a.claim(10) + b.claim(10)
        if not got:
            break
        taken += [u.model_name for u in got]
    assert sorted(taken) == sorted(_models(10)) and len(taken) == len(set(taken))


def test_finish_needs_the_lease_and_a_dead_claimers_units_are_taken_after_it(monitor_db):
    dead, live = _claims(monitor_db, "1:dead", lease=1.0), _claims(monitor_db, "2:live")
    dead.plan(20, lambda: _models(4))
    held = dead.claim(20)
    assert len(held) == 3 and len(live.claim(20)) == 1  # the dead one's three are not free yet
    assert live.claim(20) == []
    assert live.next_free(20) is not None  # still pending, leased by someone else
    time.sleep(1.2)
    taken = live.claim(20)
    assert {u.id for u in taken} == {u.id for u in held}
    dead.finish([(u, "done", 1) for u in held])  # too late: no longer its lease, changes nothing
    live.finish([(u, "done", 1) for u in taken])
    with make_engine(monitor_db).connect() as conn:
        done = conn.execute(sa.select(WorkClaim.done_by, WorkClaim.attempts).where(
            WorkClaim.id.in_([u.id for u in held]))).all()
    assert done == [("2:live", 2)] * 3


def test_older_slots_first_then_own_cached_models(monitor_db):
    a = _claims(monitor_db, "1:a", batch=2)
    a.plan(30, lambda: _models(3))
    a.plan(31, lambda: _models(3))
    first = a.claim(31, prefer={"m02"})
    assert {(u.slot, u.model_name) for u in first} == {(30, "m02"), (30, "m00")}
    a.release(first)
    again = a.claim(31, prefer={"m02"})
    assert {u.id for u in again} == {u.id for u in first}  # given back: claimable at once


def test_units_left_two_slots_later_expire_and_are_reported(monitor_db):
    a = _claims(monitor_db, "1:a")
    a.plan(40, lambda: _models(2))
    assert a.plan(40 + HORIZON_SLOTS, lambda: _models(2)) == []
    expired = a.plan(41 + HORIZON_SLOTS, lambda: _models(2))
    assert sorted(expired) == [("m00", 40), ("m01", 40)]
    assert a.pending(40 + HORIZON_SLOTS + 1) == 4  # the two later slots' units


def test_concurrent_one_statement_claims_take_each_unit_once_with_its_listing(monitor_db):
    """Four claimers in threads race through 120 units with the one-statement claim (pick, lease and
    read in one round trip): every unit is taken exactly once, and carries the planner's listing."""
    from concurrent.futures import ThreadPoolExecutor

    models = {f"m{i:03d}": "1" for i in range(120)}
    planner = _claims(monitor_db, "0:planner")
    planner.plan(50, lambda: models, lambda name: ({"champion": "1", "challenger": "2"}, {"team": name}))
    claimers = [_claims(monitor_db, f"{i}:c", batch=4) for i in range(1, 5)]

    def drain(claims: RoundClaims) -> list:
        taken = []
        while got := claims.claim(50, prefer={"m007", "m100"}):
            taken += got
            claims.finish([(u, "done", 1) for u in got])
        return taken

    with ThreadPoolExecutor(4) as pool:
        shares = list(pool.map(drain, claimers))
    taken = [u for share in shares for u in share]
    assert sorted(u.model_name for u in taken) == sorted(models)
    assert len({u.id for u in taken}) == len(taken) == 120
    assert all(u.listed == ({"champion": "1", "challenger": "2"}, {"team": u.model_name}) for u in taken)
    with make_engine(monitor_db).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(WorkClaim.slot == 50, WorkClaim.status == "done",
                                                             WorkClaim.attempts == 1)).scalar() == 120
