"""Scheduled evaluation rounds.

On PostgreSQL every process (every gunicorn worker of every replica) takes part in every round: the
round's work units (model x slot) are planned once and claimed through the database
(monitor.work_units: ``FOR UPDATE SKIP LOCKED`` plus a lease), so each unit runs once, replicas add
capacity, and a dead replica's units are taken over after the lease. Duties that must run in one
place stay on the leader: the process holding a PostgreSQL session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated connection runs the dependency probes, alert delivery,
retention, the outbox sweep and the catch-up after an outage. In local mode (SQLite) there are no
claims: the process holding an exclusive file lock beside the database runs everything.

Ticks are aligned to wall-clock multiples of the interval and the simulated batch id is the slot
number, so every process agrees on the slot, and even a unit done twice (a lease that ran out) would
produce the same (model, batch id), which the evaluations' unique constraint keeps once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from monitor.db import utcnow
from monitor.evaluation import DatabaseUnavailable, EvaluationService, Outcome
from monitor.missed_slots import ALL_MODELS, dependency_of, mark_caught_up, record_missed
from monitor.models import MissedSlot
from monitor.registry import Listed, ModelNotFound, TrackingUnavailable, versions_of
from monitor.sources.s3_inbox import InboxUnavailable, S3Inbox
from monitor.sources.simulated import first_slot, slot_batch, slot_batch_id
from monitor.work_units import HORIZON_SLOTS, RoundClaims, Unit

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x44524946544C4E  # "DRIFTLN": one scheduler leader per monitor database
MAX_UNRECORDED_MISSED = 10_000  # missed slots kept in memory while the database is down


class LeaderLock:
    """Who runs the rounds. ``held()`` re-checks the lock each tick, so a lost connection is noticed."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: sa.Connection | None = None
        self._engine: sa.Engine | None = None
        self._file: Any = None
        self._lock = threading.Lock()
        # Set when the leader's lock connection died (database outage), cleared once the lock is
        # taken again or another process holds it: this process still watches the outage.
        self.lost_at: float | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this process held the lock at its last check (no database round trip)."""
        return self._conn is not None or self._file is not None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def held(self) -> bool:
        with self._lock:
            return self._held_file() if self.is_sqlite else self._held_pg()

    def _held_pg(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - the connection (and with it the lock) is gone
                log.warning("lost the scheduler leader lock (database connection closed)")
                self._drop_pg()
                self.lost_at = time.monotonic()
        try:
            if self._engine is None:
                self._engine = sa.create_engine(self.database_url, poolclass=NullPool,
                                                connect_args={"connect_timeout": 5})
            conn = self._engine.connect()
            got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar())
            conn.commit()  # session-level lock: survives the transaction, lives as long as the connection
            if not got:
                conn.close()
                self.lost_at = None  # another process leads now
                return False
            self._conn = conn
            self.lost_at = None
            log.info("this process is now the scheduler leader")
            return True
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot take the scheduler leader lock: %s", str(exc).splitlines()[0])
            return False

    def _drop_pg(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _held_file(self) -> bool:
        import fcntl

        if self._file is not None:
            return True
        path = Path(sa.make_url(self.database_url).database or "monitor.db").with_suffix(".scheduler.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the process
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        with self._lock:
            self._drop_pg()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            if self._file is not None:
                self._file.close()
                self._file = None


class MonitorScheduler:
    """APScheduler BackgroundScheduler running evaluation rounds on the leader only."""

    def __init__(self, service: EvaluationService, inbox: S3Inbox) -> None:
        self.service = service
        self.settings = service.settings
        self.config = service.config
        self.inbox = inbox
        self.lock = LeaderLock(self.settings.database_url)
        self.aps: Any = None
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._told: set[tuple[str, str]] = set()
        self.last_round: dict[str, Any] = {}
        self._known_models: list[str] = []
        self._last_dependency: dict[str, str | None] = {}  # what the model's last transient failure hit
        self._unrecorded: list[tuple[str, int, str, str | None]] = []  # missed slots not yet written
        self._round_lock = threading.Lock()
        self._stopping = False
        self._batches: dict[str, Any] = {}
        # The round's registry listing (every model's aliases and tags): the challengers of each
        # evaluated model are read from it instead of one tracking call per model. On PostgreSQL the
        # planner stores each model's entry on its unit, so the other replicas need no listing.
        self._listing: dict[str, Listed] | None = None
        self._cycle_start: int | None = None  # the stack's first simulated slot, once one is stored
        self._round = _RoundTally()
        # PostgreSQL: every process claims work units; SQLite: the leader evaluates everything.
        self.claims: RoundClaims | None = None
        if not self.lock.is_sqlite:
            # The pid in the owner tells an operator (and the tests) which process holds a unit.
            owner = f"{os.getpid()}:{uuid.uuid4().hex[:16]}"
            self.claims = RoundClaims(service.sessions, owner, self.settings.claim_lease_seconds,
                                      self.settings.claim_batch_size)

    @property
    def interval(self) -> float:
        # The environment wins over the YAML file, which wins over the mode default.
        return float(self.settings.interval_seconds or self.config.interval_seconds or self.settings.interval)

    # --- lifecycle ---------------------------------------------------------------------------------
    def _ensure_aps(self) -> Any:
        from apscheduler.schedulers.background import BackgroundScheduler

        if self.aps is None:
            self.aps = BackgroundScheduler(timezone=UTC,
                                           job_defaults={"coalesce": True, "max_instances": 1})
        return self.aps

    def start(self) -> None:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        aps = self._ensure_aps()
        if aps.running:
            return
        if self.config.cron:
            trigger: Any = CronTrigger.from_crontab(self.config.cron, timezone=UTC)
            grace = 60
        else:
            # Align fire times to multiples of the interval so every process agrees on the slots.
            first = math.ceil(time.time() / self.interval) * self.interval
            trigger = IntervalTrigger(seconds=self.interval,
                                      start_date=datetime.fromtimestamp(first, UTC), timezone=UTC)
            grace = max(1, int(self.interval))
        aps.add_job(self.tick, trigger, id="evaluation-round", misfire_grace_time=grace,
                    replace_existing=True)
        aps.start()
        log.info("scheduler started (%s)", self.config.cron or f"every {self.interval:g} s")

    def shutdown(self, wait: bool = False, timeout: float = 15.0) -> None:
        """Stop taking work; with ``wait``, let a running job (a round, a delivery cycle) finish first
        (at most ``timeout`` seconds) so nothing it sent goes unrecorded. Later calls are no-ops."""
        self._stopping = True
        aps, self.aps = self.aps, None
        if aps is not None and aps.running:
            if wait:
                # APScheduler's own wait has no bound; a hung job must not outlive the grace period.
                done = threading.Thread(target=aps.shutdown, kwargs={"wait": True}, daemon=True)
                done.start()
                done.join(timeout)
                if done.is_alive():
                    log.warning("a scheduler job was still running after %.0f s; exiting anyway", timeout)
            else:
                aps.shutdown(wait=False)
        self.lock.release()

    def add_job(self, func: Callable[..., Any], trigger: Any = None, *, args: Any = None,
                kwargs: Any = None, **options: Any) -> Any:
        """APScheduler's ``add_job`` for other parts (monitor.alerts' delivery loop), wrapped so the job
        runs on the scheduler leader only: one process delivers, like one process evaluates."""
        call_args, call_kwargs = list(args or []), dict(kwargs or {})

        def on_leader() -> None:
            if not self._stopping and self.lock.held():
                func(*call_args, **call_kwargs)

        on_leader.__name__ = getattr(func, "__name__", "job")
        return self._ensure_aps().add_job(on_leader, trigger, **options)

    def add_watch_job(self, watch: Any, seconds: float) -> Any:
        """The dependency watch (monitor.dependencies): on the leader, and also on the process that
        lost the lock to a database outage or still owes the outage's record (nobody leads then)."""

        def watch_dependencies() -> None:
            if self._stopping:
                return
            if self.lock.held() or self.lock.lost_at is not None or watch.owes_record:
                watch.check()

        return self._ensure_aps().add_job(watch_dependencies, "interval", seconds=seconds,
                                          id="dependency-watch", replace_existing=True, max_instances=1,
                                          coalesce=True)

    def catch_up(self, dependency: str) -> list[Outcome]:
        """A dependency answers again: forget the backoff and run the current slot's round now
        (a failed evaluation of this slot is retried; finished ones are not repeated)."""
        if dependency not in ("tracking", "database", "s3_inbox") or self._stopping:
            return []
        if not self.lock.held() or not self._round_lock.acquire(blocking=False):
            return []  # not the leader, or a round is running and will do it
        try:
            self._failures.clear()
            self._not_before.clear()
            slot = self.current_slot()
            log.info("%s is back: catching up slot %s now", dependency, slot)
            if self.claims is not None:
                self.claims.reopen_failed(slot)
            return self._run_round(slot)
        finally:
            self._round_lock.release()

    # --- rounds ------------------------------------------------------------------------------------
    def current_slot(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        if self.config.cron:
            return int(now // 60)
        # Ticks fire at slot boundaries plus a small delay: round to the nearest boundary.
        return int(round(now / self.interval))

    def tick(self) -> None:
        if self._stopping:
            return
        leader = self.lock.held()
        if self.claims is not None and self.lock.lost_at is None:
            self.run_round(self.current_slot())  # every process claims its share
            return
        if not leader:
            if self.lock.lost_at is not None:
                # Nobody leads while the database is down: the last leader notes the slots it misses.
                reason = "monitor database unavailable: no scheduler leader"
                self._record_missed([(name, self.current_slot(), reason, "database")
                                     for name in self._known_models or [ALL_MODELS]])
            elif self._unrecorded:
                self._record_missed([])  # the outage is over and another process leads: write them
            return
        self.run_round(self.current_slot())

    def models(self) -> list[str]:
        """Configured and discovered champions, minus opted-out ones (config ``monitor: false``; the
        registered-model tag ``driftline.monitor=false`` is applied by ``Registry.champions``)."""
        names = [m.name for m in self.config.models if m.monitor]
        if self.config.discover:
            names += self.service.registry.champions()
        skipped = {m.name for m in self.config.models if not m.monitor}
        return sorted(set(names) - skipped)

    def round_versions(self) -> dict[str, str | None]:
        """The monitored models and the version the champion alias points at for each (None: not
        known from the listing, resolved at evaluation): one registry listing for the round."""
        names = [m.name for m in self.config.models if m.monitor]
        try:
            self._listing = self.service.registry.listing()
            versions, opted = versions_of(self._listing, self.settings.champion_alias)
        except TrackingUnavailable:
            if self.config.discover:
                raise
            # Configured models need no listing: each evaluation resolves its own alias, so a tracking
            # outage is a failed evaluation naming it (as before the round-wide listing), not a blank.
            versions, opted = {}, set()
        if self.config.discover:
            names += [n for n in versions if n not in opted]
        skipped = {m.name for m in self.config.models if not m.monitor}
        return {name: versions.get(name) for name in sorted(set(names) - skipped)}

    def run_round(self, slot: int) -> list[Outcome]:
        with self._round_lock:
            return self._run_round(slot)

    def _run_round(self, slot: int) -> list[Outcome]:
        """Evaluate every monitored model once for this slot (on PostgreSQL: the units this process
        claims); one model's trouble never stops the rest. Every model left unevaluated is recorded
        as a missed slot (monitor.missed_slots)."""
        started = time.perf_counter()
        self._round = _RoundTally()
        self._listing = None
        error = None
        runs = self.service.runs
        try:
            with runs.held() if runs is not None else contextlib.nullcontext():
                self._round_units(slot, started)
        except TrackingUnavailable as exc:
            log.warning("cannot list models: %s", exc)
            error = str(exc)
            for name in self._known_models or [ALL_MODELS]:
                self._round.missed.append((name, slot, f"cannot list models: {exc}", "tracking"))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("round %s: monitor database unavailable: %s", slot, type(exc).__name__)
            error = f"monitor database unavailable: {type(exc).__name__}"
            # A round that could not even claim its units misses the slot for every model it knows
            # (kept in memory until the database is back), as the leader's own watch does.
            noted = {name for name, _, _, _ in self._round.missed} | {
                name for name, _, _ in self._round.caught_up}  # evaluated before the error: not missed
            for name in self._known_models or [ALL_MODELS]:
                if name not in noted:
                    self._round.missed.append((name, slot, error, "database"))
        tally = self._round
        self._record_missed(tally.missed)
        self._caught_up(tally.caught_up)
        self.last_round = {"slot": slot, "models": tally.units, "evaluations": len(tally.outcomes),
                           "missed": len(tally.missed), "seconds": round(time.perf_counter() - started, 3)}
        if error is not None:
            self.last_round["error"] = error
        return tally.outcomes

    def _round_units(self, slot: int, started: float) -> None:
        if self.claims is None:
            versions = self.round_versions()
            self._known_models = list(versions)
            self._evaluate_units([Unit(0, slot, name, version) for name, version in versions.items()])
        else:
            self._claimed_round(slot, started)

    def _claimed_round(self, slot: int, started: float) -> None:
        """Plan the slot, then claim and evaluate units until none is left or 80 % of the interval
        is gone. Units leased by another process are waited for (their lease may run out: a dead
        replica) within that time too."""
        assert self.claims is not None

        def listing() -> dict[str, str | None]:
            versions = self.round_versions()
            self._known_models = list(versions)
            return versions

        for name, old in self.claims.plan(slot, listing, self._listed):
            # A slot left behind while the model's evaluations fail on a dependency is that
            # outage's slot: the backlog is the outage's retries, not busy replicas.
            dependency = self._last_dependency.get(name) if name in self._failures else None
            cause = f"{dependency} was down" if dependency else "the replicas were busy or down"
            self._round.missed.append((name, old, "not evaluated within its slot and the next "
                                                  f"{HORIZON_SLOTS}: {cause}", dependency))
        deadline = started + 0.8 * self.interval
        # Past the deadline claim nothing new: the next tick plans its slot on time and claims the
        # older slot's leftovers first.
        while not self._stopping and time.perf_counter() < deadline:
            cached = {name for name, _ in self.service.registry.cached_versions()}
            units = self.claims.claim(slot, prefer=cached)
            if units:
                self._evaluate_units(units)
                continue
            free_at = self.claims.next_free(slot)
            if free_at is None:
                return
            wait = (free_at - utcnow()).total_seconds()
            time.sleep(min(max(wait, 0.05), 1.0, max(0.0, deadline - time.perf_counter())))

    def _evaluate_units(self, units: list[Unit]) -> None:
        tally = self._round
        finished: list[tuple[Unit, str, int]] = []
        stored = self._stored_simulated(units)
        renewed = time.monotonic()
        for index, unit in enumerate(units):
            if self.claims is not None and time.monotonic() - renewed > self.settings.claim_lease_seconds / 2:
                self.claims.renew(units[index:])  # still alive: the rest of the batch stays ours
                renewed = time.monotonic()
            if self._stopping:
                if self.claims is not None:
                    self.claims.release(units[index:])  # others take them now, not after the lease
                    break
                tally.missed.append((unit.model_name, unit.slot, "monitor shutting down", None))
                continue
            unseen = stored is not None and (unit.model_name, slot_batch_id(unit.slot)) not in stored
            outcomes, failed = self._evaluate_unit(unit, unseen=unseen)
            tally.units += 1
            failed = failed or any(o.transient for o in outcomes)
            finished.append((unit, "failed" if failed else "done", len(outcomes)))
        if self.claims is not None:
            self.claims.finish(finished)

    def _stored_simulated(self, units: list[Unit]) -> set[tuple[str, str]] | None:
        """The (model, simulated batch id) pairs of these units that have an evaluation row already:
        one query for the claim batch, so each new evaluation skips its own look-up. None (each
        evaluation looks itself) when the database does not answer: there the evaluation's own
        look-up reports the outage per model."""
        pairs = [(u.model_name, slot_batch_id(u.slot)) for u in units
                 if (self.config.model(u.model_name).source or self.settings.default_source) == "simulated"]
        if not pairs:
            return None
        try:
            return self.service.stored_batches(pairs)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("cannot look up a claim batch's evaluations at once: %s", type(exc).__name__)
            return None

    def _evaluate_unit(self, unit: Unit, *, unseen: bool = False) -> tuple[list[Outcome], bool]:
        """The unit's outcomes, and whether it failed before any (backoff, outage, a bug).
        ``unseen``: no evaluation row holds the unit's simulated batch (looked up for the batch)."""
        name, slot, tally = unit.model_name, unit.slot, self._round
        if time.monotonic() < self._not_before.get(name, 0.0):
            tally.missed.append((name, slot, f"backing off after {self._failures.get(name, 0)} failed "
                                             f"round(s)", self._last_dependency.get(name)))
            return [], True
        outcomes: list[Outcome] = []
        try:
            for outcome in self._evaluate_model(name, slot, unit.model_version, unseen=unseen,
                                                listed=unit.listed or self._listed(name)):
                outcomes.append(outcome)
                tally.outcomes.append(outcome)
                self._note(name, transient=outcome.transient)
                if outcome.transient:
                    reason = str(outcome.result.get("error") or "evaluation failed")
                    self._last_dependency[name] = dependency_of(reason)
                    tally.missed.append((name, slot, reason, self._last_dependency[name]))
                elif outcome.status in ("ok", "rejected"):
                    tally.caught_up.append((name, slot, outcome.evaluation_id))
        except (DatabaseUnavailable, InboxUnavailable) as exc:
            log.warning("round %s, model %s: %s (will retry)", slot, name, exc)
            self._note(name, transient=True)
            dependency = "database" if isinstance(exc, DatabaseUnavailable) else "s3_inbox"
            self._last_dependency[name] = dependency
            tally.missed.append((name, slot, str(exc), dependency))
            return outcomes, True
        except ModelNotFound as exc:
            log.warning("round %s: model %s is gone from the registry: %s", slot, name, exc)
        except Exception as exc:  # noqa: BLE001 - one model's bug must not stop the others or the scheduler
            log.exception("round %s, model %s: unexpected error", slot, name)
            self._note(name, transient=True)
            tally.missed.append((name, slot, f"unexpected error: {type(exc).__name__}", None))
            return outcomes, True
        return outcomes, False

    def _record_missed(self, missed: list[tuple[str, int, str, str | None]]) -> None:
        """Write missed slots; while the database is down they wait in memory (bounded)."""
        pending = self._unrecorded + missed
        if not pending:
            return
        try:
            record_missed(self.service.sessions, pending, utcnow())
            self._unrecorded = []
        except sa.exc.SQLAlchemyError as exc:
            self._unrecorded = pending[-MAX_UNRECORDED_MISSED:]
            log.warning("cannot record %d missed slot(s) yet: %s", len(pending), type(exc).__name__)

    def _caught_up(self, done: list[tuple[str, int, int | None]]) -> None:
        """Close the open missed slots of models evaluated this round: one query finds which models
        have any (usually none), so a round costs no write per model."""
        if not done:
            return
        try:
            with self.service.sessions() as session:
                open_models = set(session.scalars(sa.select(MissedSlot.model_name).distinct()
                                                  .where(MissedSlot.caught_up_at.is_(None))))
            if not open_models:
                return
            everyone = ALL_MODELS in open_models
            for name, slot, evaluation_id in done:
                if everyone or name in open_models:
                    mark_caught_up(self.service.sessions, name, slot, evaluation_id, utcnow())
        except sa.exc.SQLAlchemyError as exc:
            log.warning("cannot mark missed slots caught up: %s", type(exc).__name__)

    def _evaluate_model(self, name: str, slot: int, version: str | None = None, *,
                        unseen: bool = False, listed: Listed | None = None) -> list[Outcome]:
        """``version``: the champion's version as the round resolved it (None: resolve now);
        ``unseen``: no evaluation row holds this slot's simulated batch for the model (a look-up saved);
        ``listed``: its aliases and tags from the round's listing (None: the challengers ask the registry)."""
        model_config = self.config.model(name)
        source = model_config.source or self.settings.default_source
        if source == "simulated":
            if not self._fits_scenarios(name, version):
                return []
            cycle = model_config.scenarios or self.config.scenarios
            rows = model_config.rows or self.settings.simulated_rows
            return [self.service.evaluate(name, self._batch(slot, cycle, rows), resolved=version,
                                          unseen=unseen, listed=listed)]
        if source == "s3":
            inbox = model_config.s3_inbox or self.settings.s3_inbox
            if not inbox:
                log.warning("model %s uses the s3 source but has no inbox: set s3_inbox in "
                            "MONITOR_CONFIG_FILE or MONITOR_S3_INBOX", name)
                return []
            if "{model}" in inbox:
                inbox = inbox.replace("{model}", name)
            return [self.service.evaluate(name, batch, resolved=version, listed=listed)
                    for batch in self.inbox.pending(name, inbox)]
        return []  # push: evaluated when batches arrive

    def _listed(self, name: str) -> Listed | None:
        return self._listing.get(name) if self._listing is not None else None

    def _batch(self, slot: int, cycle: Any, rows: int) -> Any:
        """The slot's simulated batch: the same for every model watching the same cycle and size,
        so it is built once per round, not once per model (10,000 rows take ~10 ms)."""
        start = self.cycle_start(slot)
        key = (slot, tuple(cycle), rows, start)
        if self._batches.get("key") != key:
            self._batches = {"key": key, "batch": slot_batch(slot, cycle, rows, start)}
        return self._batches["batch"]

    def cycle_start(self, slot: int) -> int:
        """Where the simulated cycle starts: the stack's first simulated slot (kept in the database, so
        replicas and restarts agree); before any is stored, this slot is the first."""
        if self._cycle_start is None:
            try:
                with self.service.sessions() as session:
                    self._cycle_start = first_slot(session)
            except sa.exc.SQLAlchemyError as exc:
                raise DatabaseUnavailable(f"monitor database unavailable: {type(exc).__name__}") from exc
        return slot if self._cycle_start is None else self._cycle_start

    def _fits_scenarios(self, name: str, version: str | None = None) -> bool:
        """The simulated source only feeds models whose inputs are its scenario columns (the demo
        models); every other champion is push, inbox or reference window only."""
        from seed_scenarios import FEATURES

        registry = self.service.registry
        model_config = self.config.model(name)
        try:
            version = version or registry.resolve(name)
            model = registry.load(name, version, target=model_config.target, task=model_config.task)
        except TrackingUnavailable:
            return True  # cannot tell now: the evaluation records the outage (and retries with backoff)
        inputs = sorted(c.name for c in model.inputs)
        fits = inputs == sorted(FEATURES) and model.task == "regression"
        key = (name, version)
        if not fits and key not in self._told:
            self._told.add(key)
            log.info("model %s v%s: inputs %s are not the simulated scenario's %s: not fed simulated "
                     "batches (push batches or use the S3 inbox)", name, version, inputs, sorted(FEATURES))
        return fits

    def _note(self, name: str, *, transient: bool) -> None:
        if not transient:
            self._failures.pop(name, None)
            self._not_before.pop(name, None)
            return
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        delay = min(self.settings.retry_max_seconds, self.interval * 2 ** (failures - 1))
        # The next tick comes after one interval anyway: only longer delays need skipping ticks.
        self._not_before[name] = time.monotonic() + delay - self.interval


class _RoundTally:
    """What one round of this process did: outcomes, missed slots, models to mark caught up."""

    def __init__(self) -> None:
        self.units = 0
        self.outcomes: list[Outcome] = []
        self.missed: list[tuple[str, int, str, str | None]] = []
        self.caught_up: list[tuple[str, int, int | None]] = []

