"""Challengers on live batches: every version carrying an alias that matches
``MONITOR_CHALLENGER_ALIASES`` (default ``challenger.*``) is scored on the same labelled rows as its
champion, in the champion's evaluation; so is ``previous`` during a new champion's first
``MONITOR_ROLLBACK_BATCHES`` batches (the rollback guard).

Two halves, split so the slow part runs outside the database transaction:
- ``score`` (before the store): loads the other versions (cached per version), predicts, and computes
  the paired per-row losses against the champion's. Pure data out; nothing written.
- ``record`` (inside the evaluation's transaction, after its row is flushed): stores the scores,
  advances each sequential test under a row lock and, when a test ends, inserts the decision (unique per
  test). The evaluation, the scores, the test state and the decision commit together.

Challenger results never create evaluations, so the champion's alert rules never see them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import sequential
from monitor.db import utcnow
from monitor.loop_models import ChallengerScore, ChallengerTest, LoopDecision
from monitor.models import Evaluation
from monitor.registry import Listed, LoadedModel, Registry
from monitor.settings import MonitorConfig, MonitorSettings

log = logging.getLogger(__name__)
PREVIOUS = "previous"
PROMOTION_TAG = "driftline.promotion"  # registered-model tag: manual | notify | auto
POLICIES = ("manual", "notify", "auto")
EPS = 1e-15


@dataclass
class PairedScore:
    """One other version on one batch: mean losses of both on the same rows."""

    version: str
    alias: str
    role: str  # challenger | guard
    loss: str
    n_rows: int
    champion_loss: float | None = None
    other_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def gain(self) -> float | None:
        if self.champion_loss is None or self.other_loss is None:
            return None
        return sequential.relative_gain(self.champion_loss, self.other_loss)


@dataclass
class Paired:
    """What ``score`` found for one evaluation: the scores and the model's policy at that moment."""

    champion_version: str
    policy: str
    scores: list[PairedScore]
    guard_candidate: str | None = None  # `previous`, when the champion may still be in its first batches


def per_row_losses(model: LoadedModel, frame: Any, predictions: np.ndarray | None = None,
                   proba: Any = None, use_log_loss: bool = False) -> tuple[str, np.ndarray]:
    """The per-row loss of ``model`` on ``frame`` (labelled): squared error (regression), log loss
    (classifiers with probabilities on both sides) or 0-1 loss."""
    labels = frame[model.target].to_numpy()
    if predictions is None:
        predictions = np.asarray(model.predict(frame)).reshape(-1)
    if model.task != "classification":
        return "squared_error", (labels.astype(float) - np.asarray(predictions, dtype=float)) ** 2
    if use_log_loss:
        proba = model.predict_proba(frame) if proba is None else proba
        classes = list(model.classes or [])
        index = {c: i for i, c in enumerate(classes)}
        columns = np.array([index.get(label, -1) for label in labels])
        p = np.asarray(proba, dtype=float)
        picked = np.where(columns >= 0, p[np.arange(len(labels)), np.clip(columns, 0, None)], 0.0)
        return "log_loss", -np.log(np.clip(picked, EPS, 1.0))
    return "zero_one", (np.asarray(predictions) != labels).astype(float)


class ChallengerScorer:
    def __init__(self, settings: MonitorSettings, config: MonitorConfig, registry: Registry) -> None:
        self.settings = settings
        self.config = config
        self.registry = registry
        self.pattern = re.compile(settings.challenger_aliases)
        self._seen: dict[str, tuple[dict[str, str], dict[str, str], float]] = {}
        self._lock = threading.Lock()

    # --- before the store ---------------------------------------------------------------------------
    def policy(self, name: str, tags: dict[str, str]) -> str:
        configured = self.config.model(name).promotion
        if configured in POLICIES:
            return configured
        tagged = str(tags.get(PROMOTION_TAG, "")).strip().lower()
        return tagged if tagged in POLICIES else self.settings.promotion_policy

    def forget(self, name: str) -> None:
        """Drop the model's remembered aliases: this process moved one (a retraining set a
        challenger), so its next push reads them again instead of a listing up to
        MONITOR_PUSH_ALIAS_MAX_AGE_SECONDS old (other processes see it within that age)."""
        with self._lock:
            self._seen.pop(name, None)

    def _aliases(self, name: str, recent_ok: bool,
                 listed: Listed | None = None) -> Listed:
        if listed is not None:
            return listed  # the round's listing, as fresh as the champion's version it resolved
        max_age = self.settings.push_alias_max_age_seconds if recent_ok else 0.0
        with self._lock:
            seen = self._seen.get(name)
        if seen is not None and max_age > 0 and time.monotonic() - seen[2] <= max_age:
            return seen[0], seen[1]
        aliases, tags = self.registry.model_aliases(name)
        with self._lock:
            self._seen[name] = (aliases, tags, time.monotonic())
        return aliases, tags

    def score(self, champion: LoadedModel, frame: Any, predictions: np.ndarray, *,
              recent_ok: bool = False,
              listed: Listed | None = None) -> Paired | None:
        """Paired scores of every challenger (and the guard) on ``frame``; None when there is none.

        A challenger that fails to load or predict gets a score with ``error`` (shown, not tested);
        the champion's evaluation goes on."""
        if champion.target not in frame.columns:
            return None
        others, policy = self.in_place(champion, recent_ok=recent_ok, listed=listed)
        return self.score_versions(champion, frame, predictions, others, policy)

    def in_place(self, champion: LoadedModel, *, recent_ok: bool = False,
                 listed: Listed | None = None) -> tuple[dict[str, tuple[str, str]], str]:
        """The versions to score beside ``champion`` now ({version: (alias, role)}) and the policy:
        kept with a batch pushed without labels, so the ones in place at push are scored when its
        labels come (``monitor.labels``), whatever the aliases say by then."""
        aliases, tags = self._aliases(champion.name, recent_ok, listed)
        others: dict[str, tuple[str, str]] = {}
        for alias, version in sorted(aliases.items()):
            if version != champion.version and self.pattern.fullmatch(alias) and version not in others:
                others[version] = (alias, "challenger")
        guard = aliases.get(PREVIOUS)
        if guard is not None and guard != champion.version and self.settings.rollback_batches > 0 \
                and guard not in others:
            others[guard] = (PREVIOUS, "guard")
        return others, self.policy(champion.name, tags)

    def score_versions(self, champion: LoadedModel, frame: Any, predictions: np.ndarray,
                       others: dict[str, tuple[str, str]], policy: str) -> Paired | None:
        """Paired scores of ``others`` on ``frame`` (labelled) against the champion's ``predictions``."""
        if not others:
            return None
        use_log_loss = champion.task == "classification" and champion.proba is not None
        scores = []
        champion_losses: dict[str, np.ndarray] = {}
        for version, (alias, role) in others.items():
            try:
                other = self.registry.load(champion.name, version, target=champion.target,
                                           task=champion.task)
                both_log = use_log_loss and other.proba is not None and other.classes == champion.classes
                if both_log not in champion_losses:
                    champion_losses[both_log] = per_row_losses(champion, frame, predictions,
                                                               use_log_loss=both_log)[1]
                kind, losses = per_row_losses(other, frame, use_log_loss=both_log)
                theirs = champion_losses[both_log]
                if losses.shape != theirs.shape or not np.isfinite(losses).all():
                    raise ValueError(f"expected {theirs.shape[0]} finite losses, got {losses.shape}")
                scores.append(PairedScore(version, alias, role, kind, int(len(losses)),
                                          float(theirs.mean()), float(losses.mean()),
                                          _metrics(kind, losses)))
            except Exception as exc:  # noqa: BLE001 - a broken challenger must not fail the champion
                log.warning("%s: %s v%s could not be scored: %s", champion.name, alias, version, exc)
                scores.append(PairedScore(version, alias, role, "none", int(len(frame)),
                                          error=f"{type(exc).__name__}: {str(exc)[:300]}"))
        return Paired(champion.version, policy, scores)

    @staticmethod
    def run_metrics(paired: Paired | None) -> dict[str, float]:
        """Metrics for the champion's MLflow run: one group per scored version."""
        out: dict[str, float] = {}
        for s in (paired.scores if paired else []):
            if s.error is not None:
                continue
            prefix = f"{s.role}.v{s.version}"
            out[f"{prefix}.{s.loss}"] = float(s.other_loss)
            out[f"{prefix}.champion_{s.loss}"] = float(s.champion_loss)
            out[f"{prefix}.relative_gain"] = float(s.gain)
        return out

    # --- inside the evaluation's transaction ------------------------------------------------------------
    def record(self, session: Session, evaluation: Evaluation, paired: Paired) -> list[LoopDecision]:
        decisions = []
        for s in paired.scores:
            row = ChallengerScore(evaluation_id=evaluation.id, model_name=evaluation.model_name,
                                  champion_version=paired.champion_version, version=s.version, alias=s.alias,
                                  role=s.role, loss=s.loss, n_rows=s.n_rows, champion_loss=s.champion_loss,
                                  other_loss=s.other_loss, relative_gain=s.gain, metrics=s.metrics,
                                  error=s.error, created_at=utcnow())
            session.add(row)
            if s.gain is None:
                continue
            test = self._test(session, evaluation, paired, s)
            if test is None or test.outcome != sequential.CONTINUE:
                continue
            state = sequential.update(sequential.TestState.from_dict(test.state), s.gain)
            test.state, test.batches, test.updated_at = state.to_dict(), state.batches, utcnow()
            outcome = sequential.decide(state, test.alpha, self.settings.promotion_min_batches)
            if outcome == sequential.CONTINUE and s.role == "guard" \
                    and state.batches >= self.settings.rollback_batches:
                outcome = "passed"  # the new champion survived its first N batches
            row.test_id = test.id
            if outcome == sequential.CONTINUE:
                continue
            test.outcome, test.decided_at = outcome, utcnow()
            row.decision = outcome
            decision = self._decision(session, evaluation, paired, s, test, state)
            if decision is not None:
                decisions.append(decision)
        session.flush()
        return decisions

    def _test(self, session: Session, evaluation: Evaluation, paired: Paired,
              s: PairedScore) -> ChallengerTest | None:
        """The test row, locked; created on first sight (a guard only for a champion still in its
        first batches)."""
        key = dict(model_name=evaluation.model_name, champion_version=paired.champion_version,
                   version=s.version, role=s.role)
        stmt = sa.select(ChallengerTest).filter_by(**key)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        test = session.scalars(stmt).first()
        if test is not None:
            return test
        if s.role == "guard" and self._champion_batches(session, evaluation) > self.settings.rollback_batches:
            return None  # an established champion: `previous` is not on trial any more
        try:
            with session.begin_nested():
                test = ChallengerTest(**key, alias=s.alias, alpha=self.settings.promotion_alpha,
                                      state=sequential.TestState().to_dict(), batches=0, outcome="continue",
                                      started_at=utcnow(), updated_at=utcnow())
                session.add(test)
                session.flush()
        except IntegrityError:  # another worker created it first: use theirs
            test = session.scalars(stmt).first()
        return test

    @staticmethod
    def _champion_batches(session: Session, evaluation: Evaluation) -> int:
        return int(session.scalar(sa.select(sa.func.count()).select_from(Evaluation).where(
            Evaluation.model_name == evaluation.model_name,
            Evaluation.model_version == evaluation.model_version, Evaluation.status == "ok")) or 0)

    def _decision(self, session: Session, evaluation: Evaluation, paired: Paired, s: PairedScore,
                  test: ChallengerTest, state: sequential.TestState) -> LoopDecision | None:
        evidence = {**sequential.evidence(state, test.alpha), "test_id": test.id, "loss": s.loss,
                    "last_evaluation_id": evaluation.id, "champion_version": paired.champion_version,
                    "version": s.version, "alias": s.alias, "role": s.role}
        outcome = test.outcome
        if s.role == "guard":
            if outcome != sequential.BETTER:
                return None  # previous was not better: the new champion stays
            action, status = "rollback", "pending"
            reason = (f"rollback: v{paired.champion_version} is worse than previous v{s.version} on "
                      f"{state.batches} paired batches (e-value {evidence['e_value_better']:.3g} >= "
                      f"{evidence['threshold']:.3g})")
        elif outcome == sequential.BETTER:
            action = {"auto": "promote", "notify": "notify", "manual": "record"}[paired.policy]
            status = "done" if action == "record" else "pending"
            reason = (f"challenger v{s.version} ({s.alias}) beats champion v{paired.champion_version} on "
                      f"{state.batches} paired batches: mean relative gain "
                      f"{state.mean_gain:.3f}, e-value {evidence['e_value_better']:.3g} >= "
                      f"{evidence['threshold']:.3g}")
        else:
            action, status = "reject", "done"
            reason = (f"challenger v{s.version} ({s.alias}) is worse than champion "
                      f"v{paired.champion_version} on {state.batches} paired batches")
        decision = LoopDecision(test_id=test.id, model_name=evaluation.model_name, action=action,
                                policy=paired.policy if s.role == "challenger" else "auto",
                                from_version=paired.champion_version, to_version=s.version, status=status,
                                evidence=evidence, reason=reason, attempts=0, created_at=utcnow(),
                                done_at=utcnow() if status == "done" else None)
        try:
            with session.begin_nested():
                session.add(decision)
                session.flush()
        except IntegrityError:
            return None  # the same test's decision exists already (another replica): never twice
        log.info("%s: %s", evaluation.model_name, reason)
        return decision


def _metrics(kind: str, losses: np.ndarray) -> dict[str, float]:
    if kind == "squared_error":
        return {"mse": float(losses.mean())}
    if kind == "zero_one":
        return {"accuracy": float(1.0 - losses.mean())}
    return {"log_loss": float(losses.mean())}
