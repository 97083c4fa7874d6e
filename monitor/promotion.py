"""Carrying out the decisions of the sequential tests (``loop_decisions``): promote, notify, roll back.

A decision row is inserted once per test in the evaluation's transaction (monitor/challengers.py). The
leader's job claims pending rows one at a time with
``FOR UPDATE SKIP LOCKED`` and acts while holding the row: a second replica skips the row, and a row
is ``done`` (or ``failed``/``stale``) in the same commit that ends the claim. An alias is therefore
moved at most once per test. A crash between the alias move and the commit leaves the row pending;
the next attempt finds the registry already in the decided state and only records it.

Before any alias moves the version passes the checks shared with the trainer
(``model_registry.checks``: it loads, predicts every reference row, its signature takes the champion's
inputs). Every move records who (``driftline-monitor``), why and the evidence as MLflow tags and in
the alias history the dashboard shows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from model_registry import aliases
from model_registry.checks import VersionCheckFailed, check_version
from monitor import loop_alerts
from monitor.db import utcnow
from monitor.loop_models import ChallengerTest, LoopDecision
from monitor.registry import ModelNotFound, Registry, TrackingUnavailable

log = logging.getLogger(__name__)
ACTOR = "driftline-monitor"
MAX_ATTEMPTS = 20
BLOCKED = "promotion_blocked"  # a test whose winner failed the checks: no longer on trial


@dataclass
class DecisionExecutor:
    sessions: sessionmaker
    registry: Registry
    alert_engine: Any = None  # monitor.alerts.AlertEngine when the alerts are installed
    actor: str = ACTOR

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def run_pending(self, limit: int = 20) -> int:
        """Act on pending decisions; returns how many were settled."""
        settled = 0
        with self._lock:
            self.resolve_moved()
            for _ in range(limit):
                outcome = self._one()
                if outcome is None:
                    break
                settled += outcome
        return settled

    def _one(self) -> int | None:
        with self.sessions() as session, session.begin():
            stmt = (sa.select(LoopDecision).where(LoopDecision.status == "pending")
                    .order_by(LoopDecision.id).limit(1))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            decision = session.scalars(stmt).first()
            if decision is None:
                return None
            decision.attempts = (decision.attempts or 0) + 1
            try:
                status, note = self._act(session, decision)
            except TrackingUnavailable as exc:
                decision.error = str(exc)[:1000]
                if decision.attempts < MAX_ATTEMPTS:
                    log.warning("decision %s waits for the tracking server: %s", decision.id, exc)
                    return None  # stays pending (the commit keeps the attempt count)
                status, note = "failed", f"tracking server unavailable after {decision.attempts} attempts"
            except VersionCheckFailed as exc:
                status, note = "failed", f"checks failed, nothing moved: {exc.what}"
                if decision.action == "promote":
                    self._blocked(session, decision, exc)
            except ModelNotFound as exc:
                status, note = "failed", f"the version is gone, nothing moved: {exc}"
            decision.status, decision.done_at = status, utcnow()
            decision.actor = self.actor
            if note:
                decision.error = note[:2000] if status != "done" else None
                decision.reason = decision.reason if status == "done" else f"{decision.reason} ({note})"
            log.info("decision %s (%s %s v%s): %s %s", decision.id, decision.action, decision.model_name,
                     decision.to_version, status, note or "")
            return 1

    # --- the actions ----------------------------------------------------------------------------------
    def _act(self, session: Any, decision: LoopDecision) -> tuple[str, str]:
        if decision.action == "notify":
            summary = (f"{decision.model_name}: {decision.reason}; promote it with `python -m trainer "
                       f"promote --model {decision.model_name} --version {decision.to_version}`")
            loop_alerts.fire(session, self.alert_engine, "challenger_ready", decision.model_name,
                             decision.to_version, summary, _details(decision), utcnow())
            return "done", ""
        if decision.action == "promote":
            return self._promote(session, decision)
        if decision.action == "rollback":
            return self._rollback(session, decision)
        return "done", ""  # record / reject: nothing to do beyond the row

    def _champion(self, name: str) -> tuple[dict[str, str], str | None]:
        found, _tags = self.registry.model_aliases(name)
        return found, found.get(aliases.CHAMPION)

    def _promote(self, session: Any, decision: LoopDecision) -> tuple[str, str]:
        name, version = decision.model_name, decision.to_version
        found, champion = self._champion(name)
        if champion == version:
            return "done", "already champion"
        alias = str(decision.evidence.get("alias") or aliases.CHALLENGER)
        if champion != decision.from_version or found.get(alias) != version:
            return "stale", (f"the registry moved meanwhile (champion v{champion}, {alias} "
                             f"v{found.get(alias)}): nothing moved")
        checked = self._check(name, version, decision.from_version)
        evidence = {**decision.evidence, "decision_id": decision.id, "checks": checked}
        by = f"{self.actor} (auto promotion, decision {decision.id})"
        self.registry._call("promoting", aliases.make_champion, self.registry.client, name, version, by,
                            f"auto: {decision.reason}", evidence=evidence, drop_alias=alias)
        now = utcnow()
        loop_alerts.resolve(session, self.alert_engine, "challenger_ready", name,
                            f"v{version} became champion", now)
        loop_alerts.resolve(session, self.alert_engine, "champion_rolled_back", name,
                            f"v{version} was promoted", now)
        loop_alerts.resolve(session, self.alert_engine, BLOCKED, name, f"v{version} was promoted", now)
        return "done", ""

    def _blocked(self, session: Any, decision: LoopDecision, exc: VersionCheckFailed) -> None:
        """A challenger that won failed the checks: say so (warning) with the failed check and the
        test's evidence, and end its trial, so a later retraining may replace it."""
        alias = str(decision.evidence.get("alias") or aliases.CHALLENGER)
        summary = (f"{decision.model_name}: challenger v{decision.to_version} ({alias}) beat champion "
                   f"v{decision.from_version} but was not promoted: {exc.what}. Nothing moved; {exc.hint}")
        details = {**_details(decision), "failed_check": exc.what, "alias": alias}
        loop_alerts.fire(session, self.alert_engine, BLOCKED, decision.model_name,
                         decision.to_version, summary, details, utcnow())
        session.execute(sa.update(ChallengerTest).where(ChallengerTest.id == decision.test_id)
                        .values(outcome=BLOCKED, updated_at=utcnow()))

    def resolve_moved(self) -> int:
        """Resolve `promotion_blocked` alerts whose version the challenger alias left (or that became
        champion some other way): the blocked version is no longer the one waiting."""
        resolved = 0
        with self.sessions() as session, session.begin():
            for name, version, notes in loop_alerts.firing(session, BLOCKED):
                alias = notes.get("alias") or aliases.CHALLENGER
                try:
                    found, champion = self._champion(name)
                except TrackingUnavailable as exc:
                    log.warning("%s alerts not checked against the registry now: %s", BLOCKED, exc)
                    break
                except ModelNotFound:
                    found, champion = {}, None
                if found.get(alias) == version and champion != version:
                    continue  # still the waiting challenger
                now_at = f"v{found[alias]}" if alias in found else "no version"
                reason = (f"v{version} became champion" if champion == version
                          else f"the {alias} alias moved to {now_at}")
                resolved += loop_alerts.resolve(session, self.alert_engine, BLOCKED, name, reason, utcnow(),
                                                version=version)
        return resolved

    def _rollback(self, session: Any, decision: LoopDecision) -> tuple[str, str]:
        name, previous = decision.model_name, decision.to_version
        found, champion = self._champion(name)
        if champion == previous:
            return "done", "already rolled back"
        if champion != decision.from_version or found.get(aliases.PREVIOUS) != previous:
            return "stale", f"the registry moved meanwhile (champion v{champion}): nothing moved"
        checked = self._check(name, previous, None)
        evidence = {**decision.evidence, "decision_id": decision.id, "checks": checked}
        by = f"{self.actor} (auto rollback, decision {decision.id})"
        self.registry._call("rolling back", aliases.rollback, self.registry.client, name, by,
                            f"auto: {decision.reason}", evidence=evidence)
        loop_alerts.fire(session, self.alert_engine, "champion_rolled_back", name, decision.from_version,
                         f"{name}: champion v{decision.from_version} rolled back to v{previous}: "
                         f"{decision.reason}", _details(decision), utcnow())
        return "done", ""

    def _check(self, name: str, version: str, champion_version: str | None) -> dict[str, Any]:
        """The shared checks, on the version's reference (else the champion's)."""
        model = self.registry.load(name, version)
        reference = self.registry.mlflow_reference(model)
        if reference is None and champion_version:
            reference = self.registry.mlflow_reference(self.registry.load(name, champion_version))
        if reference is None:
            raise VersionCheckFailed(f"{name} v{version} has no reference data in MLflow to be checked on",
                                     "log reference data with the version, or promote it by hand")
        columns = [c.name for c in model.inputs] or model.features
        return check_version(name, version, reference.train[[c for c in columns if c in reference.train]],
                             champion_version=champion_version, numeric=model.task != "classification")


def _details(decision: LoopDecision) -> dict[str, Any]:
    ev = decision.evidence or {}
    return {"decision_id": str(decision.id), "champion_version": decision.from_version,
            "challenger_version": decision.to_version, "policy": decision.policy,
            "batches": str(ev.get("batches")), "mean_relative_gain": f"{ev.get('mean_relative_gain', 0):.4f}",
            "e_value": f"{ev.get('e_value_better', 0):.4g}", "threshold": f"{ev.get('threshold', 0):.4g}",
            "evidence": ev}
