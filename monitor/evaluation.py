"""One evaluation: resolve the champion, load it, validate the batch, score drift, predict, and store
the result (database row + per-feature rows + a queued MLflow run) exactly once per (model, batch id).

Listeners (``listeners``) run after the evaluation row is flushed and inside the same transaction,
so whatever they write (the alerts outbox) commits atomically with the evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from monitor import labels as labels_later
from monitor.columns import select_columns
from monitor.db import utcnow, write_lock
from monitor.models import Evaluation, FeatureResult, ProcessedObject, ReferenceWindowRows
from monitor.monitoring_runs import RunLogger
from monitor.monitoring_runs import enqueue as enqueue_run
from monitor.reference import ProfileStore, ReferenceChoice, ReferenceNotFound, model_features
from monitor.registry import Listed, LoadedModel, ModelNotFound, Registry, TrackingUnavailable
from monitor.settings import MonitorConfig, MonitorSettings
from monitor.sources import Batch
from monitor.validation import validate_batch

log = logging.getLogger(__name__)

Listener = Callable[[Session, Evaluation], None]
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")
STORE_ATTEMPTS = 3
# What a retry of a failed batch overwrites on the failed row (everything the new attempt decided).
REPLACED_ON_RETRY = ("model_version", "alias", "source", "scenario", "status", "error", "data_drift",
                     "concept_drift", "prediction_drift", "drifted_features", "n_rows", "mse", "mae",
                     "baseline_mse", "baseline_mae", "report", "mlflow_run_id", "started_at", "finished_at",
                     "duration_seconds", "batch_digest", "task", "reference_kind", "reference_source",
                     "accuracy", "baseline_accuracy", "labels", "n_labelled", "labels_received_at",
                     "estimate")


class DatabaseUnavailable(Exception):
    """The monitor's database cannot be reached: nothing could be recorded; retry later."""


class BatchConflict(Exception):
    """The batch id was evaluated already with other rows (content digests differ): nothing stored."""


@dataclass
class Outcome:
    evaluation_id: int | None
    status: str  # ok | failed | rejected
    result: dict[str, Any]
    duplicate: bool = False  # the batch had been evaluated already (by this or another process)
    transient: bool = False  # failed for a reason that may go away (tracking/S3 down): back off, retry


@dataclass
class EvaluationService:
    settings: MonitorSettings
    config: MonitorConfig
    sessions: sessionmaker
    registry: Registry
    profiles: ProfileStore
    listeners: list[Listener] = field(default_factory=list)
    runs: RunLogger | None = None  # logs the MLflow runs queued by evaluations, after the response
    # The closed loop (monitor/loop.py): challengers scored on the batch's rows before the store,
    # their scores/tests/decisions and the kept labelled rows written in the evaluation's transaction.
    loop: Any = None
    _aliases: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict, repr=False)
    _alias_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _renewing: set[tuple[str, str]] = field(default_factory=set, repr=False)

    # --- entry point -------------------------------------------------------------------------------
    def evaluate(self, model_name: str, batch: Batch, *, alias: str | None = None,
                 version: str | None = None, resolved: str | None = None, unseen: bool = False,
                 listed: Listed | None = None) -> Outcome:
        """Evaluate ``batch`` against the model version ``alias`` points at now (or ``version``);
        ``resolved`` is the alias's version as a scheduled round resolved it for all models at once.
        ``unseen``: the caller looked already (a round asks once for a claim batch's models) and no
        row held this batch id, so the per-evaluation look-up is skipped; a concurrent insert since
        is still caught by the unique key at the store (answered with that row: stored once).
        ``listed``: the model's aliases and tags from the round's registry listing (the challengers
        are read from it: no tracking call per model)."""
        with self.runs.busy() if self.runs is not None else contextlib.nullcontext():
            return self._evaluate(model_name, batch, alias=alias, version=version, resolved=resolved,
                                  unseen=unseen, listed=listed)

    def _evaluate(self, model_name: str, batch: Batch, *, alias: str | None,
                  version: str | None, resolved: str | None, unseen: bool = False,
                  listed: Listed | None = None) -> Outcome:
        alias = None if version else (alias or self.settings.champion_alias)
        started = utcnow()
        clock = time.perf_counter()
        existing, seen = None, False
        try:
            if not unseen and not _insert_first(batch):
                existing, seen = self._lookup(model_name, batch.batch_id, batch.digest)
        except (OperationalError, SAInterfaceError) as exc:
            raise DatabaseUnavailable(f"monitor database unavailable: {_first_line(exc)}") from exc
        if existing is not None:
            return existing

        row = Evaluation(model_name=model_name, model_version=version or "unknown", alias=alias,
                         batch_id=batch.batch_id, source=batch.source, scenario=batch.scenario,
                         drifted_features=[], report={}, started_at=started, batch_digest=batch.digest,
                         n_rows=int(len(batch.frame)) if batch.frame is not None else None)
        features: list[dict[str, Any]] = []  # FeatureResult rows, as their as_dict forms
        transient = False
        run_payload: dict[str, Any] | None = None
        window_frame = None
        pending = None  # an unlabelled batch: what completing it when its labels come needs
        kept = None  # ... and, for a big one, its rows on their way to storage
        loop_work = None
        try:
            version = version or resolved or self._resolve(model_name, alias,
                                                           recent_ok=batch.source == "push")
            row.model_version = version
            model_config = self.config.model(model_name)
            model = self.registry.load(model_name, version, target=model_config.target,
                                       task=model_config.task)
            row.task = model.task
            checked = validate_batch(batch.frame, model, id_column=batch.meta.get("id_column"))
            choice = None
            if checked.ok:
                try:
                    choice = self.profiles.resolve(
                        model, self.config.drift_settings(model.name), self.settings.reference_window_rows,
                        self.settings.push_alias_max_age_seconds if batch.source == "push" else 0.0)
                except ReferenceNotFound as exc:
                    row.status, row.error = "no_reference", str(exc)
                    row.report = {"no_reference": True, "error": str(exc)}
            if not checked.ok:
                row.status = "rejected"
                row.error = "data quality: " + "; ".join(checked.problems)
                row.report = {"rejected": True, "problems": checked.problems, "details": checked.details}
            elif choice is not None and choice.collecting:
                # Only labelled rows can fill a reference window.
                window_frame = checked.frame if checked.labelled else None
                self._fill_collecting(row, choice, len(checked.frame) if checked.labelled else 0)
            elif choice is not None:
                row.reference_kind, row.reference_source = choice.kind, choice.source
                predictions, proba = self._predict(model, checked.frame, choice)
                # A big batch without labels encodes (on PostgreSQL also stores) the rows it keeps
                # while the drift tests and the estimate run; the result is awaited below.
                kept = None if checked.labelled else \
                    labels_later.keep_rows_early(checked, predictions, proba, self.sessions.kw["bind"])
                report = self._drift(model, checked.frame, choice, predictions, proba)
                self._fill_ok(row, report)
                # A batch without labels needs its estimate now (fitted at the version's first one);
                # a labelled one gets it only when the version has one already (monitor/reference.py).
                estimator = self.profiles.estimator(model, choice.key, choice.profile,
                                                    fit=not checked.labelled)
                pending = labels_later.fill_labels(row, model, checked, estimator, predictions, proba,
                                                   kept=kept)
                if pending is not None:  # the labels will be scored against this same reference
                    pending.profile_key = choice.key
                    pending.drift_settings = self.config.drift_settings(model.name)
                    if self.loop is not None:  # ... and the challengers in place now scored then
                        pending.challengers = self.loop.in_place(model, recent_ok=batch.source == "push")
                features = _feature_rows(report)
                if self.loop is not None:
                    loop_work = self.loop.before_store(model, checked.frame, predictions,
                                                       recent_ok=batch.source == "push", listed=listed)
                # The MLflow run is logged after the response (monitor/monitoring_runs.py): queued
                # in the evaluation's transaction, so it is never lost and never doubled.
                run_payload = {
                    "model": model_name, "version": version, "batch_id": batch.batch_id,
                    "metrics": labels_later.run_metrics(row, _mlflow_metrics(row, report)),
                    "result": {**self._result(row, report, predictions), "estimate": row.estimate},
                    "tags": {"driftline.source": batch.source, "driftline.scenario": batch.scenario or "",
                             "driftline.status": "ok", "driftline.task": model.task,
                             "driftline.reference": f"{choice.kind}: {choice.source}"[:500]}}
                if loop_work is not None:
                    run_payload["metrics"].update(self.loop.run_metrics(loop_work))
        except ModelNotFound:
            raise  # nothing to evaluate against: the caller answers 404 / logs, no row for a phantom model
        except TrackingUnavailable as exc:
            transient = True
            self._fail(row, str(exc))
        except (OperationalError, SAInterfaceError) as exc:
            # The profile store reads the database: an outage there cannot be recorded either.
            raise DatabaseUnavailable(f"monitor database unavailable: {_first_line(exc)}") from exc
        except Exception as exc:  # noqa: BLE001 - a bad model or batch must never take the process down
            transient = _looks_transient(exc)
            log.warning("evaluation of %s batch %s failed:\n%s", model_name, batch.batch_id,
                        traceback.format_exc(limit=6))
            self._fail(row, f"{type(exc).__name__}: {_first_line(exc)}")
        row.finished_at = utcnow()
        row.duration_seconds = time.perf_counter() - clock
        claimed = False  # the store kept this batch's staged rows (labels_later.keep_rows_early)
        try:
            outcome = self._store(row, features, batch, run_payload, window_frame, fresh=not seen,
                                  loop_work=loop_work, pending=pending)
            claimed = pending is not None and outcome.status == "ok" and not outcome.duplicate
        except (OperationalError, SAInterfaceError) as exc:
            raise DatabaseUnavailable(f"monitor database unavailable: {_first_line(exc)}") from exc
        finally:
            if kept is not None and not claimed:
                labels_later.release(kept, self.sessions.kw["bind"])
        if run_payload is not None and not outcome.duplicate and self.runs is not None:
            self.runs.wake()
        outcome.transient = transient
        return outcome

    def warm(self, model_name: str) -> str:
        """Resolve the champion alias (cached as a push would), load that version and its reference
        profile: what a worker does at start (monitor/preload.py) so no request pays it."""
        alias = self.settings.champion_alias
        version = self._ask_alias(model_name, alias, (model_name, alias))
        model_config = self.config.model(model_name)
        model = self.registry.load(model_name, version, target=model_config.target, task=model_config.task)
        choice = self.profiles.resolve(model, self.config.drift_settings(model.name),
                                       self.settings.reference_window_rows)
        if not choice.collecting:  # a push model: its pushes may come without labels
            self.profiles.estimator(model, choice.key, choice.profile, fit=True)
        return version

    # --- steps -------------------------------------------------------------------------------------
    def _resolve(self, model_name: str, alias: str | None, *, recent_ok: bool) -> str:
        """The alias's version; a push may use the answer of the last few seconds
        (MONITOR_PUSH_ALIAS_MAX_AGE_SECONDS): one registry round trip is most of a small push."""
        max_age = self.settings.push_alias_max_age_seconds if recent_ok else 0.0
        key = (model_name, alias or "")
        if max_age > 0:
            with self._alias_lock:
                seen = self._aliases.get(key)
            age = time.monotonic() - seen[1] if seen is not None else math.inf
            if age <= max_age:
                if age > max_age / 2:  # renewed in the background: steady pushes never wait on it
                    self._renew_alias(model_name, alias, key)
                return seen[0]
        return self._ask_alias(model_name, alias, key)

    def _ask_alias(self, model_name: str, alias: str | None, key: tuple[str, str]) -> str:
        asked = time.monotonic()  # the answer is as old as the question
        version = self.registry.resolve(model_name, alias)
        with self._alias_lock:
            self._aliases[key] = (version, asked)
        return version

    def _renew_alias(self, model_name: str, alias: str | None, key: tuple[str, str]) -> None:
        with self._alias_lock:
            if key in self._renewing:
                return
            self._renewing.add(key)

        def renew() -> None:
            try:
                self._ask_alias(model_name, alias, key)
            except Exception:  # noqa: BLE001 - the next push past the max age asks (and answers 503)
                log.info("background renewal of %s's alias failed", model_name, exc_info=True)
            finally:
                with self._alias_lock:
                    self._renewing.discard(key)

        threading.Thread(target=renew, name="alias-renewal", daemon=True).start()

    def _predict(self, model: LoadedModel, frame: Any, choice: ReferenceChoice) -> tuple[np.ndarray, Any]:
        """The model's predictions and (classifiers) probabilities on the batch's inputs."""
        profile = choice.profile
        features = [f for f in model_features(model, frame.columns) if f in profile.features] \
            or list(profile.features)
        inputs = select_columns(frame, [c.name for c in model.inputs] if model.inputs else features)
        if profile.classification is not None:
            return _in_chunks(model.predict, inputs), _in_chunks(model.predict_proba, inputs, flat=False)
        return np.asarray(_in_chunks(model.predict, inputs), dtype=float), None

    def _drift(self, model: LoadedModel, frame: Any, choice: ReferenceChoice, predictions: np.ndarray,
               proba: Any) -> Any:
        """The drift report of the batch and the model's outputs on it against the reference; a batch
        without the target column is scored without labels, keeping the concept tests' share of alpha
        for when they come."""
        from monitor.drift import DriftConfig, DriftDetector

        profile = choice.profile
        config = DriftConfig.from_dict(self.config.drift_settings(model.name))
        detector = DriftDetector.from_profile(profile, config)
        labelled = model.target in frame.columns
        if profile.classification is not None:
            return detector.score(select_columns(frame, profile.features), predictions=predictions,
                                  labels=frame[model.target].to_numpy() if labelled else None,
                                  probabilities=proba, labels_later=not labelled)
        return detector.score(select_columns(frame, profile.features), predictions=predictions,
                              labels=frame[model.target].to_numpy(dtype=float) if labelled else None,
                              labels_later=not labelled)

    @staticmethod
    def _fill_collecting(row: Evaluation, choice: ReferenceChoice, rows: int) -> None:
        """A batch that goes into the reference window: no verdict, the window's progress instead."""
        have = min(choice.window_size, choice.window_rows + rows)
        row.status = "collecting"
        row.reference_kind, row.reference_source = "window", choice.source
        row.data_drift = row.concept_drift = row.prediction_drift = None
        row.drifted_features = []
        message = f"collecting reference, {have} of {choice.window_size} rows"
        if have >= choice.window_size:
            message += "; drift verdicts start with the next batch"
        row.report = {"collecting": {"rows": have, "of": choice.window_size, "message": message}}
        row.error = None

    @staticmethod
    def _fill_ok(row: Evaluation, report: Any) -> None:
        perf = report.performance or {}
        row.status = "ok"
        row.accuracy, row.baseline_accuracy = _num(perf.get("accuracy")), _num(perf.get("baseline_accuracy"))
        row.data_drift = bool(report.data_drift)
        row.concept_drift = bool(report.concept_drift)
        row.prediction_drift = bool(report.prediction_drift)
        row.drifted_features = list(report.drifted_features)
        row.mse, row.mae = _num(perf.get("mse")), _num(perf.get("mae"))
        row.baseline_mse, row.baseline_mae = _num(perf.get("baseline_mse")), _num(perf.get("baseline_mae"))
        row.report = report.to_dict()

    @staticmethod
    def _fail(row: Evaluation, reason: str) -> None:
        row.status = "failed"
        row.error = reason
        row.report = {"failed": True, "error": reason}
        row.data_drift = row.concept_drift = row.prediction_drift = None
        row.drifted_features = []
        log.warning("evaluation of %s batch %s failed: %s", row.model_name, row.batch_id, reason)

    def _result(self, row: Evaluation, report: Any, predictions: np.ndarray) -> dict[str, Any]:
        numeric = predictions.dtype.kind in "iuf"
        return {"model": row.model_name, "version": row.model_version, "alias": row.alias,
                "batch_id": row.batch_id, "source": row.source, "scenario": row.scenario,
                "n_rows": row.n_rows, "started_at": row.started_at.isoformat(), "task": row.task,
                "reference": {"kind": row.reference_kind, "source": row.reference_source},
                "prediction_mean": float(np.mean(predictions)) if predictions.size and numeric else None,
                "report": row.report}  # the dict _fill_ok made (to_dict is a tenth of a push)

    def stored_batches(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (model, batch id) pairs any evaluation row holds (a failed one included): one
        round trip for a round's claim batch instead of one look-up per evaluation."""
        if not pairs:
            return set()
        names = sorted({name for name, _ in pairs})
        batch_ids = sorted({batch_id for _, batch_id in pairs})
        with self.sessions.kw["bind"].connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            found = conn.execute(sa.select(Evaluation.model_name, Evaluation.batch_id).where(
                Evaluation.model_name.in_(names), Evaluation.batch_id.in_(batch_ids))).all()
        return {(row.model_name, row.batch_id) for row in found}

    def _existing(self, model_name: str, batch_id: str, digest: str | None) -> Outcome | None:
        """A finished (ok/rejected) evaluation of this batch; failed ones are retried.

        Raises ``BatchConflict`` when both sides have a digest and they differ."""
        return self._lookup(model_name, batch_id, digest)[0]

    def _lookup(self, model_name: str, batch_id: str, digest: str | None) -> tuple[Outcome | None, bool]:
        """``_existing`` and whether any row (a failed one included) holds this batch id.

        Asked first in one autocommit round trip (no BEGIN/ROLLBACK): almost every push is new."""
        where = (Evaluation.model_name == model_name, Evaluation.batch_id == batch_id)
        with self.sessions.kw["bind"].connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            found = conn.execute(sa.select(Evaluation.status).where(*where)).first()
        if found is None:
            return None, False
        with self.sessions() as session:
            row = session.scalar(_by_batch(model_name, batch_id))
            if row is None:
                return None, False
            if row.status == "failed":
                return None, True
            return _duplicate_of(row, digest), True

    def _store(self, row: Evaluation, features: list[dict[str, Any]], batch: Batch,
               run_payload: dict[str, Any] | None = None, window_frame: Any = None,
               fresh: bool = False, loop_work: Any = None, pending: Any = None) -> Outcome:
        """Insert (or replace a failed attempt), run listeners, commit — all in one transaction.

        A unique key may be taken by a concurrent transaction: this batch (another worker stored it:
        return that) or a row a listener writes (two first evaluations of one model both create its
        alert row): then the transaction runs again, on fresh copies, and sees the other's row.
        ``fresh``: no row held this batch id when the evaluation started, so the first attempt inserts
        without looking (the unique key still catches a concurrent insert)."""
        for attempt in range(STORE_ATTEMPTS):
            try:
                return self._store_once(_copy_evaluation(row), features, batch,
                                        run_payload, window_frame, fresh and attempt == 0, loop_work,
                                        pending)
            except IntegrityError:
                existing = self._existing(row.model_name, row.batch_id, row.batch_digest)
                if existing is not None:
                    return existing
                if attempt == STORE_ATTEMPTS - 1:
                    raise
                log.info("store of %s batch %s met a concurrent insert; retrying", row.model_name,
                         row.batch_id)
        raise AssertionError("not reached")

    def _store_once(self, row: Evaluation, features: list[dict[str, Any]], batch: Batch,
                    run_payload: dict[str, Any] | None, window_frame: Any, fresh: bool,
                    loop_work: Any = None, pending: Any = None) -> Outcome:
        with write_lock(self.sessions), self.sessions() as session, session.begin():
            previous = None if fresh else \
                session.scalar(_by_batch(row.model_name, row.batch_id).with_for_update())
            if previous is not None and previous.status != "failed":
                return _duplicate_of(previous, row.batch_digest)
            if previous is not None:
                target = previous  # a retry of a failed batch replaces the failure in place
                for name in REPLACED_ON_RETRY:
                    setattr(target, name, getattr(row, name))
                target.features.clear()  # the failure's rows, deleted at the flush
            else:
                target = row
                session.add(target)
            session.flush()
            # The feature rows in one Core INSERT, without the ORM's unit of work and RETURNING of
            # their ids (on SQLite a statement per row): a fifth of the store.
            _insert_features(session, target.id, features)
            processed = batch.meta.get("processed_object")
            if processed and target.status != "failed":
                # The inbox file counts as done only with a finished evaluation, in the same commit.
                session.add(ProcessedObject(evaluation_id=target.id, **processed))
            if window_frame is not None and target.status == "collecting":
                # The rows join the reference window in the evaluation's own commit: counted once.
                session.add(ReferenceWindowRows(model_name=target.model_name,
                                                model_version=target.model_version,
                                                evaluation_id=target.id, n_rows=len(window_frame),
                                                data=_parquet(window_frame)))
            if run_payload is not None and target.status == "ok":
                enqueue_run(session, target, run_payload)
            if loop_work is not None and target.status == "ok":
                self.loop.in_store(session, target, loop_work)
            if pending is not None and target.status == "ok":
                labels_later.keep_pending(session, target, pending)
            for listener in self.listeners:
                listener(session, target)
            session.flush()
            return Outcome(target.id, target.status, target.full(feature_results=features))

    # --- reads for the API ------------------------------------------------------------------------
    def get(self, evaluation_id: int) -> dict[str, Any] | None:
        with self.sessions() as session:
            row = session.get(Evaluation, evaluation_id, options=[selectinload(Evaluation.features)])
            return row.full() if row is not None else None


PREDICT_CHUNK_ROWS = 131_072
# A pushed batch up to this many rows is evaluated without first asking whether its id is stored: a
# push is almost always new, and the look-up was a round trip and a pool checkout (a twentieth of a
# 100-row push). A repeat is still caught by the unique key at the store and answered as before (the
# stored verdict, or 409 for other rows), after evaluating it again. Larger batches look first: their
# evaluation costs far more than the round trip.
INSERT_FIRST_MAX_ROWS = 10_000


def _insert_first(batch: Batch) -> bool:
    return (batch.source == "push" and batch.frame is not None
            and len(batch.frame) <= INSERT_FIRST_MAX_ROWS)


def _in_chunks(predict: Callable[[Any], Any], inputs: Any, flat: bool = True) -> Any:
    """``predict(inputs)`` over slices of rows of a large batch: the model's copies of its input (the
    pyfunc's schema enforcement, sklearn's 2-D array) stay a slice's size instead of the batch's.
    Models predict row by row, so the result is the same; small batches go in one call."""
    def one(part: Any) -> Any:
        out = predict(part)
        return None if out is None else (np.asarray(out).reshape(-1) if flat else np.asarray(out))

    if len(inputs) <= PREDICT_CHUNK_ROWS:
        return one(inputs)
    parts = [one(inputs.iloc[start:start + PREDICT_CHUNK_ROWS])
             for start in range(0, len(inputs), PREDICT_CHUNK_ROWS)]
    return None if parts[0] is None else np.concatenate(parts)


def _insert_features(session: Session, evaluation_id: int, features: list[dict[str, Any]]) -> None:
    """Insert ``features`` (``FeatureResult.as_dict`` forms) as rows of evaluation ``evaluation_id``,
    in order (the order their ids give when the evaluation is read back)."""
    if features:
        session.execute(sa.insert(FeatureResult.__table__),
                        [{"evaluation_id": evaluation_id, **f} for f in features])


def _copy_evaluation(row: Evaluation) -> Evaluation:
    return Evaluation(**{c.key: getattr(row, c.key) for c in Evaluation.__table__.columns if c.key != "id"})


def _duplicate_of(row: Evaluation, digest: str | None) -> Outcome:
    if digest and row.batch_digest and digest != row.batch_digest:
        raise BatchConflict(
            f"batch id {row.batch_id!r} of {row.model_name} was evaluated already (evaluation {row.id}) "
            f"with other rows (digest {row.batch_digest[:12]}…, this push {digest[:12]}…): send new rows "
            "under a new X-Batch-Id, or the same rows to get the stored verdict")
    return Outcome(row.id, row.status, row.full(), duplicate=True)


def _by_batch(model_name: str, batch_id: str) -> sa.Select:
    return (sa.select(Evaluation).options(selectinload(Evaluation.features))
            .where(Evaluation.model_name == model_name, Evaluation.batch_id == batch_id))


def _feature_rows(report: Any) -> list[dict[str, Any]]:
    """The report's tests as ``feature_results`` rows (``FeatureResult.as_dict`` forms)."""
    rows = []
    for feature, tests in report.features.items():
        for test_name, result in tests.items():
            rows.append({
                "feature": str(feature), "test": str(test_name), "statistic": _num(result.statistic),
                "p_value": _num(result.p_value), "adjusted_p_value": _num(result.adjusted_p_value),
                "threshold": _num(result.threshold),
                "drift": None if result.adjusted_drift is None else bool(result.counts)})
    return rows


def _mlflow_metrics(row: Evaluation, report: Any) -> dict[str, float]:
    metrics: dict[str, float] = {
        "data_drift": float(bool(row.data_drift)), "concept_drift": float(bool(row.concept_drift)),
        "prediction_drift": float(bool(row.prediction_drift)),
        "n_drifted_features": float(len(row.drifted_features)), "n_rows": float(row.n_rows or 0),
    }
    for name in ("mse", "mae", "baseline_mse", "baseline_mae"):
        value = getattr(row, name)
        if value is not None:
            metrics[name] = value
    perf = report.performance or {}
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier", "baseline_accuracy",
                 "baseline_balanced_accuracy", "baseline_macro_f1", "baseline_log_loss", "baseline_brier"):
        if _num(perf.get(name)) is not None:
            metrics[name] = float(perf[name])
    for label, value in (perf.get("per_class_recall") or {}).items():
        if _num(value) is not None:
            metrics[_METRIC_NAME.sub("_", f"recall.{label}")] = float(value)
    for feature, tests in report.features.items():
        for test_name, result in tests.items():
            safe = _METRIC_NAME.sub("_", f"{feature}.{test_name}")
            if _num(result.statistic) is not None:
                metrics[f"{safe}.statistic"] = float(result.statistic)
            if _num(result.p_value) is not None:
                metrics[f"{safe}.p_value"] = float(result.p_value)
    return metrics


def _parquet(frame: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _looks_transient(exc: BaseException) -> bool:
    name = type(exc).__name__
    return any(word in name for word in ("Connection", "Timeout", "Endpoint", "ClientError"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
