"""The closed loop, wired into the monitor: challengers judged on live batches (monitor/challengers.py,
monitor/sequential.py), decisions carried out (monitor/promotion.py), retraining on drift
(monitor/retraining.py). docs/promotion.md tells the whole story.

``ClosedLoop`` is the evaluation service's ``loop``: ``before_store`` scores the challengers on the
batch's rows (outside the transaction), ``in_store`` writes their scores, the tests' new state, any
decision and the kept labelled rows in the evaluation's transaction. The scheduler leader acts on
decisions and retraining requests every LOOP_SECONDS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.challengers import ChallengerScorer, Paired
from monitor.models import Evaluation
from monitor.promotion import DecisionExecutor
from monitor.registry import Listed, LoadedModel
from monitor.retraining import RetrainingLauncher, RetrainingRequester

log = logging.getLogger(__name__)
LOOP_SECONDS = 5.0
FRAMES = "driftline.loop.frames"  # session.info: the batch rows of this transaction's evaluation


@dataclass
class LoopWork:
    paired: Paired | None
    frame: Any  # the batch's validated rows (kept for retraining when it is on)


@dataclass
class ClosedLoop:
    scorer: ChallengerScorer
    executor: DecisionExecutor
    requester: RetrainingRequester
    launcher: RetrainingLauncher

    def before_store(self, model: LoadedModel, frame: Any, predictions: np.ndarray, *,
                     recent_ok: bool = False,
                     listed: Listed | None = None) -> LoopWork | None:
        try:
            paired = self.scorer.score(model, frame, predictions, recent_ok=recent_ok, listed=listed)
        except Exception as exc:  # noqa: BLE001 - a challenger never changes the champion's verdict
            log.warning("%s: challengers not scored on this batch: %s", model.name, exc)
            paired = None
        keep = self.requester.enabled(model.name) and model.target in frame.columns
        if paired is None and not keep:
            return None
        return LoopWork(paired, frame if keep else None)

    def in_place(self, model: LoadedModel, *, recent_ok: bool = False) -> dict[str, Any] | None:
        """The challengers (and guard) in place for a batch pushed without labels, kept with its rows
        so they are scored on the same rows when the labels come (``pinned``)."""
        try:
            others, policy = self.scorer.in_place(model, recent_ok=recent_ok)
        except Exception as exc:  # noqa: BLE001 - a challenger never changes the champion's verdict
            log.warning("%s: challengers in place not known: %s", model.name, exc)
            return None
        if not others:
            return None
        return {"policy": policy, "versions": {v: list(pair) for v, pair in others.items()}}

    def pinned(self, model: LoadedModel, frame: Any, predictions: np.ndarray,
               in_place: dict[str, Any] | None) -> LoopWork | None:
        """When the labels come: the challengers kept at push scored on the labelled rows (``frame``
        with the target) against the champion's push-time predictions; ``in_store`` records them."""
        if not in_place or not in_place.get("versions"):
            return None
        others = {str(v): (str(pair[0]), str(pair[1])) for v, pair in in_place["versions"].items()}
        try:
            paired = self.scorer.score_versions(model, frame, predictions, others,
                                                str(in_place.get("policy") or "manual"))
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: challengers not scored on the labelled rows: %s", model.name, exc)
            return None
        return None if paired is None else LoopWork(paired, None)

    def run_metrics(self, work: LoopWork) -> dict[str, float]:
        return self.scorer.run_metrics(work.paired)

    def in_store(self, session: Session, evaluation: Evaluation, work: LoopWork) -> None:
        if work.paired is not None:
            self.scorer.record(session, evaluation, work.paired)
        if work.frame is not None:
            # Kept only if this batch turns out drifted (the retraining listener decides, after the
            # alert engine): a clean batch costs no copy of its rows.
            session.info.setdefault(FRAMES, {})[evaluation.id] = work.frame

    def retraining_listener(self, session: Session, evaluation: Evaluation) -> None:
        """After the alert engine's listener: the alerts of this evaluation are decided by then."""
        frame = session.info.get(FRAMES, {}).pop(evaluation.id, None)
        self.requester(session, evaluation, frame)

    def run_decisions(self) -> None:
        try:
            self.executor.run_pending()
        except Exception:  # noqa: BLE001 - the job must survive a database blip
            log.exception("promotion decisions could not be processed")

    def run_retraining(self) -> None:
        try:
            self.launcher.run_pending()
        except Exception:  # noqa: BLE001
            log.exception("retraining requests could not be processed")


def install(monitor: Any, alerts_runtime: Any = None, app: Any = None) -> ClosedLoop:
    """Build the loop for a monitor app and hook it into the evaluation service."""
    engine = getattr(alerts_runtime, "engine", None)
    scorer = ChallengerScorer(monitor.settings, monitor.config, monitor.registry)
    loop = ClosedLoop(
        scorer=scorer,
        executor=DecisionExecutor(monitor.sessions, monitor.registry, engine),
        requester=RetrainingRequester(monitor.settings, monitor.config),
        launcher=RetrainingLauncher(monitor.settings, monitor.sessions, engine, on_new_version=scorer.forget),
    )
    monitor.service.loop = loop
    if app is not None:
        from monitor.loop_api import bp

        app.register_blueprint(bp)
    monitor.service.listeners.append(loop.retraining_listener)
    # Leader-only jobs (MonitorScheduler.add_job): one process acts on decisions and requests; the row
    # claims keep that true even if two processes ever run them.
    monitor.scheduler.add_job(loop.run_decisions, "interval", seconds=LOOP_SECONDS, id="loop-decisions",
                              replace_existing=True, max_instances=1, coalesce=True)
    monitor.scheduler.add_job(loop.run_retraining, "interval", seconds=LOOP_SECONDS, id="loop-retraining",
                              replace_existing=True, max_instances=1, coalesce=True)
    return loop
