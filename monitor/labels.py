"""Labels arrive later: unlabelled batches, the label-free estimate, and completing an evaluation when
its labels come (``POST /api/models/<name>/batches/<batch_id>/labels``).

At push (called by ``monitor.evaluation``): a batch without the target column is scored on its inputs
and predictions (data drift, prediction drift and quality decided at once, the concept tests' share of
alpha kept for later), its concept verdict and realized performance are ``None`` (unknown), and the
rows needed to finish the job (inputs, predictions, probabilities, the id column) are kept compactly in
``batch_labels`` (Parquet, zstd). Every ok evaluation gets the version's label-free estimate
(``monitor.estimation``) once the version has an estimator (fitted at its first batch without labels:
``ProfileStore.estimator``), and a labelled one its error at once.

When the labels come (``LabelsService.receive``): they are aligned to the rows (same order, or joined
on an id column), the batch is scored again with them against the same profile, and the concept
verdict, realized performance, residual distribution and the estimate's error are written into the
same evaluation row, in one transaction with the alert state (listeners' ``on_labels``) and the late
metrics for the evaluation's MLflow run (``monitoring_runs``: merged into the queued run, or logged
into the finished run once, keyed by the labels' digest).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import tempfile
import threading
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.db import insert_with_file, utcnow, write_lock
from monitor.estimation import TrackRecord, judge, track_record
from monitor.models import BatchLabels, Evaluation, KeptRowPart, MonitoringRun
from monitor.parquet_writer import write_rows
from monitor.pg_copy import copy_rows

log = logging.getLogger(__name__)
PREDICTION = "__prediction__"
PROBA = "__proba_{}__"
ROW_ID = "__id__"
TRACK_RECORD_BATCHES = 100  # the track record reads a model's last this many labelled batches
IN_MEMORY_ROWS = 100_000  # larger batches' kept Parquet goes to a temporary file, not a second copy in RAM
PART_ROWS = 65_536  # ... or, on PostgreSQL, to slices of this many rows (kept_row_parts): about 10 MB each
REALIZED = {"regression": ("mse", "mae"), "classification": ("accuracy", "macro_f1")}


class LabelsError(Exception):
    """The sender's mistake (or a state that forbids the labels): ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


@dataclass
class PendingBatch:
    data: Any  # the Parquet, as a binary file object (BytesIO, or a temporary file for a large batch)
    n_rows: int
    id_column: str | None
    profile_key: str | None = None  # the reference in force at push (``ProfileStore.pinned``)
    drift_settings: dict[str, Any] | None = None
    challengers: dict[str, Any] | None = None  # in place at push (``ClosedLoop.in_place``)
    parts_key: str | None = None  # the rows are staged slices (``data`` None): ``StagedParts``
    n_parts: int = 0


@dataclass(frozen=True)
class StagedParts:
    """A large batch's kept rows, committed as ``kept_row_parts`` under ``key``, not yet claimed."""

    key: str
    n_parts: int


# --- at push -------------------------------------------------------------------------------------
def keep_rows_early(checked: Any, predictions: np.ndarray, proba: Any, bind: Any = None) -> Future | None:
    """For a batch of more than ``IN_MEMORY_ROWS`` without labels: its kept rows, from now on in a
    thread beside the drift tests and the estimate (``fill_labels(kept=...)`` awaits them).

    On PostgreSQL (``bind``) they are encoded in slices and committed as they come (``StagedParts``);
    the evaluation's commit then only claims them. Otherwise the future is their Parquet, to be
    written in the evaluation's commit (encoding a 1M x 20 batch is 0.5-0.7 s, mostly in pyarrow
    without the interpreter lock). None for a smaller batch: a thread hand-off would cost a 100-row
    push more than it saves."""
    if len(checked.frame) <= IN_MEMORY_ROWS:
        return None
    if bind is not None and bind.dialect.name == "postgresql":
        return _pool("stager").submit(_stage_parts, bind, checked.frame, predictions, proba, checked.ids)
    return _pool("encoder").submit(_pending_frame, checked.frame, predictions, proba, checked.ids)


# Two pools: a stager waits on the slices it has the encoder make, so they must not share workers.
_POOLS: dict[str, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(name: str) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if name not in _POOLS:
            _POOLS[name] = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"kept-rows-{name}")
        return _POOLS[name]


def _forget_pools() -> None:
    _POOLS.clear()  # a forked child has none of its parent's threads


os.register_at_fork(after_in_child=_forget_pools)


def fill_labels(row: Evaluation, model: Any, checked: Any, estimator: Any, predictions: np.ndarray,
                proba: Any, kept: Future | None = None) -> PendingBatch | None:
    """Labels status, estimate (and its error when the labels came with the batch); the rows to keep
    when they did not (``kept``: their Parquet from ``keep_rows_early``). ``estimator``: the
    version's label-free estimator, or None."""
    estimate = None
    if estimator is not None:
        try:
            estimate = _estimate(estimator, checked.frame, predictions, proba)
        except Exception as exc:  # noqa: BLE001 - an estimate is an extra; the verdicts stand without it
            log.warning("no estimate for %s batch %s: %s", row.model_name, row.batch_id, exc)
    if checked.labelled:
        row.labels, row.n_labelled = "at_push", int(len(checked.frame))
        if estimate is not None:
            estimate["judged"] = judge(estimate, realized_of(row))
            estimate["judged_rows"] = row.n_labelled
        row.estimate = estimate
        return None
    row.labels, row.n_labelled, row.estimate = "pending", 0, estimate
    row.concept_drift = None  # unknown until the labels come: not "no"
    report = dict(row.report or {})
    report["concept_drift"] = None
    verdicts = dict(report.get("verdicts") or {})
    if "concept_drift" in verdicts:
        verdicts["concept_drift"] = {**verdicts["concept_drift"], "detected": None}
    report["verdicts"] = verdicts
    report["labels"] = {"status": "pending", "target": model.target,
                        "message": "concept drift and realized performance wait for the labels: "
                                   f"POST /api/models/{row.model_name}/batches/{row.batch_id}/labels"}
    row.report = report
    data = kept.result() if kept is not None else _pending_frame(checked.frame, predictions, proba,
                                                                 checked.ids)
    id_column = None if checked.ids is None else str(checked.ids.name)
    if isinstance(data, StagedParts):
        return PendingBatch(None, len(checked.frame), id_column, parts_key=data.key, n_parts=data.n_parts)
    return PendingBatch(data, len(checked.frame), id_column)


def _estimate(estimator: Any, frame: pd.DataFrame, predictions: np.ndarray, proba: Any) -> dict[str, Any]:
    if getattr(estimator, "method", "") == "cbpe":
        if proba is None:
            raise ValueError("the model gave no probabilities for this batch")
        return estimator.estimate(predictions, proba)
    return estimator.estimate(frame, predictions)


def _kept_columns(frame: pd.DataFrame, predictions: np.ndarray, proba: Any, ids: Any) -> pd.DataFrame:
    out = frame.copy(deep=False)  # new columns on a shallow copy: the batch's own arrays, not a copy
    out[PREDICTION] = predictions if predictions.dtype.kind in "iufb" else predictions.astype(str)
    if proba is not None:
        for k in range(np.asarray(proba).shape[1]):
            out[PROBA.format(k)] = np.asarray(proba, dtype=float)[:, k]
    if ids is not None:
        out[ROW_ID] = ids.astype(str).to_numpy()
    return out


def _pending_frame(frame: pd.DataFrame, predictions: np.ndarray, proba: Any, ids: Any) -> Any:
    out = _kept_columns(frame, predictions, proba, ids)
    big = len(out) > IN_MEMORY_ROWS  # open while the pending batch lives: closed when it is collected
    buffer = tempfile.TemporaryFile() if big else io.BytesIO()  # noqa: SIM115
    write_rows(out, buffer, compression="zstd")
    return buffer


def _stage_parts(bind: sa.Engine, frame: pd.DataFrame, predictions: np.ndarray, proba: Any,
                 ids: Any) -> StagedParts:
    """The kept rows as Parquet slices of ``PART_ROWS``, committed under a new key in one COPY of
    their own. The encoder makes the next slice while the server stores the last one, so two
    slices are in memory at most; as one 160 MB value the server also spent twice as long (one row
    of 160 MB: 1.6-1.8 s, eight of 20 MB: 0.8-1.1 s, plain COPY here)."""
    out = _kept_columns(frame, predictions, proba, ids)
    key, now, starts = uuid.uuid4().hex, utcnow(), range(0, len(out), PART_ROWS)
    encoder = _pool("encoder")

    def encode(start: int) -> io.BytesIO:
        buffer = io.BytesIO()
        write_rows(out.iloc[start:start + PART_ROWS], buffer, compression="zstd")
        return buffer

    ahead = deque([encoder.submit(encode, starts[0])])  # one encoded while the last is copied

    failed: list[BaseException] = []

    def rows() -> Any:
        for seq, start in enumerate(starts):
            try:
                buffer = ahead.popleft().result()
            except BaseException as exc:
                failed.append(exc)
                raise
            if seq + 1 < len(starts):
                ahead.append(encoder.submit(encode, starts[seq + 1]))
            yield {"key": key, "seq": seq, "n_rows": min(PART_ROWS, len(out) - start),
                   "created_at": now, "data": buffer}

    raw = bind.raw_connection()
    try:
        cursor = raw.cursor()
        copy_rows(cursor, KeptRowPart.__table__, ["key", "seq", "n_rows", "created_at", "data"], rows())
        raw.commit()
    except BaseException as exc:
        for pending in ahead:
            pending.cancel()
        raw.rollback()
        if failed:  # psycopg2 reports an encoding error as a cancelled query: not the database's fault
            raise failed[0] from exc
        raise
    finally:
        raw.close()
    return StagedParts(key, len(starts))


def release(kept: Future | None, bind: sa.Engine) -> None:
    """After a store that kept no rows of this batch (failed, a repeat, an error): its staged slices
    are deleted. Waits for the staging to end; an outage leaves them to the retention prune."""
    if kept is None:
        return
    try:
        staged = kept.result()
    except Exception:  # noqa: BLE001 - nothing was committed: the slices went with their transaction
        return
    if not isinstance(staged, StagedParts):
        return
    try:
        with bind.begin() as connection:
            connection.execute(sa.delete(KeptRowPart).where(KeptRowPart.key == staged.key,
                                                            KeptRowPart.batch_labels_id.is_(None)))
    except Exception:  # noqa: BLE001 - the prune deletes unclaimed slices after an hour
        log.warning("could not delete the unclaimed kept rows %s; the retention prune will", staged.key,
                    exc_info=True)


def keep_pending(session: Session, evaluation: Evaluation, pending: PendingBatch) -> None:
    """In the evaluation's transaction: the rows its labels will complete (as a query parameter a
    1M-row batch's Parquet cost a gigabyte and seconds: ``insert_with_file``), or the claim on the
    slices staged for them (``_stage_parts``)."""
    values = {"evaluation_id": evaluation.id, "model_name": evaluation.model_name,
              "batch_id": evaluation.batch_id, "id_column": pending.id_column, "n_rows": pending.n_rows,
              "profile_key": pending.profile_key or None, "drift_settings": pending.drift_settings,
              "challengers": pending.challengers, "created_at": utcnow()}
    if pending.parts_key is None:
        insert_with_file(session, BatchLabels, values, "data", pending.data)
        return
    row_id = session.execute(sa.insert(BatchLabels).values(**values).returning(BatchLabels.id)).scalar_one()
    claimed = session.execute(sa.update(KeptRowPart)
                              .where(KeptRowPart.key == pending.parts_key,
                                     KeptRowPart.batch_labels_id.is_(None))
                              .values(batch_labels_id=row_id)
                              .execution_options(synchronize_session=False)).rowcount
    if claimed != pending.n_parts:  # pruned or claimed meanwhile: storing the verdict without them would lie
        raise RuntimeError(f"{claimed} of the {pending.n_parts} staged slices of kept rows "
                           f"{pending.parts_key} were found")


def kept_frame(session: Session, stored: BatchLabels) -> pd.DataFrame | None:
    """The rows kept for ``stored``'s labels (one Parquet, or its slices in order); None when gone.
    The slices come from one statement (streamed a slice at a time): labels completing the batch
    meanwhile delete them, and a statement per slice could then find some gone."""
    if stored.data is not None:
        return pd.read_parquet(io.BytesIO(bytes(stored.data)))
    result = session.execute(sa.select(KeptRowPart.data).where(KeptRowPart.batch_labels_id == stored.id)
                             .order_by(KeptRowPart.seq).execution_options(yield_per=1))
    parts = [pd.read_parquet(io.BytesIO(bytes(data))) for data in result.scalars()]
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def realized_of(row: Evaluation) -> dict[str, Any]:
    perf = (row.report or {}).get("performance") or {}
    return {"mse": row.mse, "mae": row.mae, "accuracy": perf.get("accuracy"),
            "macro_f1": perf.get("macro_f1")}


def estimate_metrics(estimate: dict[str, Any] | None) -> dict[str, float]:
    """MLflow metrics of an estimate: estimated_<m>, estimated_<m>_lower/_upper, and its errors."""
    out: dict[str, float] = {}
    for name, block in ((estimate or {}).get("metrics") or {}).items():
        for key, suffix in (("estimate", ""), ("lower", "_lower"), ("upper", "_upper")):
            if _finite(block.get(key)):
                out[f"estimated_{name}{suffix}"] = float(block[key])
    for name, judged in ((estimate or {}).get("judged") or {}).items():
        if _finite(judged.get("relative_error")):
            out[f"estimate_relative_error_{name}"] = float(judged["relative_error"])
        out[f"estimate_covered_{name}"] = float(bool(judged.get("covered")))
    return out


def run_metrics(row: Evaluation, metrics: dict[str, float]) -> dict[str, float]:
    """The push's MLflow metrics: the estimate added; no concept verdict when it is unknown."""
    if row.labels == "pending":
        metrics.pop("concept_drift", None)
    return {**metrics, **estimate_metrics(row.estimate)}


# --- when the labels come --------------------------------------------------------------------------
def body_digest(body: pd.DataFrame, target: str, id_column: str | None, task: str) -> str:
    """sha256 of the labels as sent: in row order, or as (id, label) pairs sorted by id (any order)."""
    if target not in body.columns:
        raise LabelsError(400, f"the labels lack the target column '{target}'")
    values = _clean_labels(body[target], target, task)
    texts = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v) for v in values]
    if id_column is not None and id_column in body.columns:
        texts = sorted(f"{i}\x1e{t}" for i, t in zip(body[id_column].astype(str), texts, strict=True))
    return hashlib.sha256("\x1f".join(texts).encode()).hexdigest()


def align_labels(body: pd.DataFrame, stored: pd.DataFrame, target: str, id_column: str | None,
                 stored_id_column: str | None, task: str) -> np.ndarray:
    """One label per stored row (None / NaN where none was sent), or ``LabelsError`` saying what to fix."""
    columns = [str(c) for c in body.columns]
    if target not in columns:
        raise LabelsError(400, f"the labels lack the target column '{target}'",
                          {"expected_columns": [c for c in (id_column, target) if c],
                           "received_columns": columns})
    wanted = {target, id_column} - {None}
    extra = [c for c in columns if c not in wanted]
    if extra:
        raise LabelsError(400, f"unexpected column(s) {extra} in the labels: send only "
                               f"{sorted(wanted)}", {"received_columns": columns})
    values = _clean_labels(body[target], target, task)
    if id_column is None:
        if len(body) != len(stored):
            raise LabelsError(400, f"{len(body)} label row(s) for a batch of {len(stored)} rows: send one "
                                   "per row in the pushed order (null where the label is unknown), or name "
                                   "an id column with ?id_column=",
                              {"batch_rows": len(stored), "label_rows": len(body)})
        return values
    if ROW_ID not in stored.columns:
        raise LabelsError(400, f"the batch was pushed without an id column, so labels cannot be joined on "
                               f"{id_column!r}: send them in the pushed row order, or push with ?id_column=")
    if id_column != stored_id_column:
        raise LabelsError(400, f"the batch's id column is {stored_id_column!r}, not {id_column!r}")
    ids = body[id_column].astype("string")
    if ids.isna().any():
        raise LabelsError(400, f"empty value(s) in the id column {id_column!r}")
    if ids.duplicated().any():
        dupes = sorted(set(ids[ids.duplicated()].astype(str)))[:10]
        raise LabelsError(400, f"id(s) sent more than once: {dupes}")
    position = {v: i for i, v in enumerate(stored[ROW_ID].astype(str))}
    unknown = [v for v in ids.astype(str) if v not in position]
    if unknown:
        raise LabelsError(422, f"{len(unknown)} id(s) are not in batch: {unknown[:10]}",
                          {"unknown_ids": unknown[:10], "unknown_count": len(unknown)})
    aligned = np.full(len(stored), np.nan) if task == "regression" else \
        np.full(len(stored), None, dtype=object)
    aligned[[position[v] for v in ids.astype(str)]] = values
    return aligned


def _clean_labels(column: pd.Series, target: str, task: str) -> np.ndarray:
    if task != "regression":
        from monitor.drift.classification import as_labels

        return as_labels(column.to_numpy(dtype=object) if column.dtype == object else column.to_numpy())
    if column.dtype == bool:
        raise LabelsError(422, f"the target '{target}' must be numeric, got booleans")
    values = pd.to_numeric(column, errors="coerce")
    bad = int(values.isna().sum() - column.isna().sum())
    if bad:
        raise LabelsError(422, f"{bad} value(s) of the target '{target}' are not numbers (send null for an "
                               "unknown label)")
    array = values.to_numpy(dtype=float)
    if np.isinf(array).any():
        raise LabelsError(422, f"infinite value(s) in the target '{target}'")
    return array


@dataclass
class LabelsService:
    """Completes evaluations when their labels arrive (the API's labels endpoint)."""

    service: Any  # monitor.evaluation.EvaluationService

    def receive(self, model_name: str, batch_id: str, body: pd.DataFrame,
                id_column: str | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, the evaluation in full): 200 completed now or the same labels again."""
        service = self.service
        with service.sessions() as session:
            row = session.scalar(sa.select(Evaluation).where(Evaluation.model_name == model_name,
                                                             Evaluation.batch_id == batch_id))
            if row is None:
                raise LabelsError(404, f"no batch {batch_id!r} of {model_name}",
                                  f"list its evaluations at /api/models/{model_name}/evaluations")
            self._check_state(row)
            stored = session.scalar(sa.select(BatchLabels).where(BatchLabels.evaluation_id == row.id))
            waiting = stored is not None and stored.labels_digest is None
            frame = kept_frame(session, stored) if waiting else None
            if stored is None or (frame is None and stored.labels_digest is None):
                raise LabelsError(409, f"batch {batch_id!r} kept no rows to complete (older than "
                                       "ALERT_HISTORY_RETENTION_DAYS, or pushed before labels could come "
                                       "later)")
            evaluation_id, version, task = row.id, row.model_version, row.task or "regression"
            stored_id_column, earlier = stored.id_column, stored.labels_digest
            profile_key, drift, in_place = stored.profile_key, stored.drift_settings, stored.challengers
        model_config = service.config.model(model_name)
        model = service.registry.load(model_name, version, target=model_config.target, task=model_config.task)
        if frame is None:  # labels are in: a repeat is told from other labels by the digest alone
            digest = body_digest(body, model.target, id_column, task)
            return self._repeat(evaluation_id, batch_id, earlier, digest)
        labels = align_labels(body, frame, model.target, id_column, stored_id_column, task)
        known = pd.notna(labels) if task != "regression" else np.isfinite(labels.astype(float))
        if not known.any():
            raise LabelsError(422, "no row has a label: send at least one (null marks a label still unknown)")
        digest = body_digest(body, model.target, id_column, task)
        # The reference and drift settings in force when the batch was pushed, whatever was uploaded or
        # configured since; batches stored before they were kept (or a profile gone) use today's.
        drift = drift if drift is not None else service.config.drift_settings(model_name)
        profile = service.profiles.pinned(model, profile_key) if profile_key else None
        key = profile_key or ""
        if profile is None:
            choice = service.profiles.resolve(model, drift, service.settings.reference_window_rows)
            profile, key = choice.profile, choice.key
        if profile is None:
            raise LabelsError(409, "the version's reference is not ready; retry later")
        # Fitted at push when the batch got an estimate (or stored by another process): read, never
        # fitted here, since a batch that had none has nothing to judge.
        estimator = service.profiles.estimator(model, key, profile, fit=False)
        report, judged_estimate = _rescore(profile, estimator, model, frame, labels, known, drift)
        loop = getattr(service, "loop", None)
        work = None if loop is None else \
            loop.pinned(model, *_labelled_rows(frame, labels, known, model.target), in_place)
        with write_lock(service.sessions), service.sessions() as session, session.begin():
            # Lock order of the run logger (monitoring_runs, then evaluations): the other way round
            # the two deadlock when the push's run is being logged while its labels arrive.
            session.execute(sa.select(MonitoringRun.id).where(MonitoringRun.evaluation_id == evaluation_id)
                            .with_for_update())
            row = session.get(Evaluation, evaluation_id, with_for_update=True, populate_existing=True)
            stored = session.scalar(sa.select(BatchLabels).where(BatchLabels.evaluation_id == evaluation_id)
                                    .with_for_update())
            earlier = stored.labels_digest  # another request brought labels meanwhile
            if earlier is None:
                extra = {} if work is None else loop.run_metrics(work)
                result = self._write(session, row, stored, report, judged_estimate, int(known.sum()), digest,
                                     extra)
                if work is not None:  # paired losses into the sequential tests, in this transaction
                    loop.in_store(session, row, work)
        if earlier is not None:
            return self._repeat(evaluation_id, batch_id, earlier, digest)
        if service.runs is not None:
            service.runs.wake()
        return 200, result

    def _write(self, session: Session, row: Evaluation, stored: BatchLabels, report: Any,
               judged_estimate: dict[str, Any] | None, n_labelled: int, digest: str,
               extra: dict[str, float]) -> dict[str, Any]:
        _complete(row, report, judged_estimate, n_labelled)
        # The rows are done with: only the digest stays, to tell a repeat (200) from other labels (409).
        stored.labels_digest, stored.received_at, stored.data = digest, row.labels_received_at, None
        session.execute(sa.delete(KeptRowPart).where(KeptRowPart.batch_labels_id == stored.id))
        late_metrics(session, row, digest, extra)
        for listener in self.service.listeners:
            hook = getattr(listener, "on_labels", None)
            if hook is not None:
                hook(session, row)
        session.flush()
        return row.full()

    def _repeat(self, evaluation_id: int, batch_id: str, earlier: str,
                digest: str) -> tuple[int, dict[str, Any]]:
        """Labels for a batch that has them: the same ones are answered as before, others refused."""
        if earlier != digest:
            raise LabelsError(409, f"batch {batch_id!r} got other labels already; labels are final",
                              {"evaluation_id": evaluation_id})
        return 200, self.service.get(evaluation_id)

    @staticmethod
    def _check_state(row: Evaluation) -> None:
        if row.status != "ok":
            raise LabelsError(409, f"batch {row.batch_id!r} has no verdict to complete (status {row.status})",
                              {"evaluation_id": row.id, "status": row.status})
        if row.labels == "at_push":
            raise LabelsError(409, f"batch {row.batch_id!r} carried its labels when it was pushed",
                              {"evaluation_id": row.id})
        if row.labels not in ("pending", "received"):
            raise LabelsError(409, f"batch {row.batch_id!r} was evaluated before labels could come later",
                              {"evaluation_id": row.id})


def _labelled_rows(frame: pd.DataFrame, labels: np.ndarray, known: np.ndarray,
                   target: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled rows with their target (inputs as pushed) and the champion's predictions on them."""
    inputs = frame.loc[known, [c for c in frame.columns if not str(c).startswith("__")]]
    rows = inputs.assign(**{target: labels[known]}).reset_index(drop=True)
    return rows, frame[PREDICTION].to_numpy()[known]


def _rescore(profile: Any, estimator: Any, model: Any, frame: pd.DataFrame, labels: np.ndarray,
             known: np.ndarray, drift: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    from monitor.drift import DriftConfig, DriftDetector

    config = DriftConfig.from_dict(drift)
    detector = DriftDetector.from_profile(profile, config)
    features = list(profile.features)
    proba_columns = sorted([c for c in frame.columns if c.startswith("__proba_")],
                           key=lambda c: int(c.removeprefix("__proba_").removesuffix("__")))
    proba = frame[proba_columns].to_numpy(dtype=float) if proba_columns else None
    predictions = frame[PREDICTION].to_numpy()
    if profile.classification is None:
        predictions = predictions.astype(float)
    report = detector.score(frame[features], predictions=predictions, labels=labels, probabilities=proba)
    estimate = None
    if estimator is not None:
        subset = frame.loc[known].reset_index(drop=True)
        try:
            estimate = _estimate(estimator, subset, predictions[known],
                                 None if proba is None else proba[known])
        except Exception as exc:  # noqa: BLE001
            log.warning("no estimate on the labelled rows of %s: %s", model.name, exc)
    return report, estimate


def _complete(row: Evaluation, report: Any, subset_estimate: dict[str, Any] | None, n_labelled: int) -> None:
    """The labelled verdicts into the row: concept drift, realized performance, the estimate's error."""
    new = report.to_dict()
    perf = report.performance or {}
    row.concept_drift = bool(report.concept_drift)
    row.mse, row.mae = _num(perf.get("mse")), _num(perf.get("mae"))
    row.baseline_mse, row.baseline_mae = _num(perf.get("baseline_mse")), _num(perf.get("baseline_mae"))
    row.accuracy, row.baseline_accuracy = _num(perf.get("accuracy")), _num(perf.get("baseline_accuracy"))
    stored = dict(row.report or {})
    stored["concept_drift"] = row.concept_drift
    stored["concept"] = new.get("concept") or {}
    stored["performance"] = new.get("performance") or {}
    verdicts = dict(stored.get("verdicts") or {})
    verdicts["concept_drift"] = (new.get("verdicts") or {}).get("concept_drift")
    stored["verdicts"] = verdicts
    stored["sample_sizes"] = {**(stored.get("sample_sizes") or {}), **(new.get("sample_sizes") or {})}
    distributions = dict(stored.get("distributions") or {})
    if "residuals" in (new.get("distributions") or {}):
        distributions["residuals"] = new["distributions"]["residuals"]
    stored["distributions"] = distributions
    label_name = None
    for name, tests in (new.get("features") or {}).items():
        if name not in (stored.get("features") or {}):
            label_name = name  # a classifier's label drift: known only now, reported beside the inputs
            stored.setdefault("features", {})[name] = tests
    label_tests = (new.get("features") or {}).get(label_name) or {} if label_name else {}
    label_drift = any(isinstance(t, dict) and bool(t.get("adjusted_drift")) for t in label_tests.values())
    stored["labels"] = {"status": "received", "rows": n_labelled, "of": row.n_rows,
                        "label_drift": label_drift}
    if label_drift:
        stored["labels"]["revised"] = _revise_data_drift(row, stored, str(label_name))
    row.report = stored
    row.labels, row.n_labelled, row.labels_received_at = "received", n_labelled, utcnow()
    if row.estimate is not None:
        estimate = dict(row.estimate)
        judged_on = subset_estimate or estimate
        estimate["judged"] = judge(judged_on, realized_of(row))
        estimate["judged_rows"] = n_labelled
        if subset_estimate is not None and n_labelled != row.n_rows:
            estimate["labelled_rows_estimate"] = subset_estimate["metrics"]
        row.estimate = estimate


def _revise_data_drift(row: Evaluation, stored: dict[str, Any], label_name: str) -> list[str]:
    """A classifier's label (prior) drift, found only now, joins the data-drift verdict as it would
    have at push with the labels (the label's chi-square is one of the data tests there): the label
    becomes a drifted feature, and the verdict turns to drift if it was not. Returns the verdicts
    that changed (``["data_drift"]`` or none), which the alert rules read (``on_labels``)."""
    revised = [] if row.data_drift else ["data_drift"]
    row.data_drift = True
    row.drifted_features = [*[f for f in (row.drifted_features or []) if f != label_name], label_name]
    stored["data_drift"] = True
    stored["drifted_features"] = list(row.drifted_features)
    verdicts = stored.setdefault("verdicts", {})
    verdict = dict(verdicts.get("data_drift") or {"kind": "data_drift"})
    verdict["detected"] = True
    verdict["features"] = [*[f for f in (verdict.get("features") or []) if f != label_name], label_name]
    verdict["revised_by_labels"] = True
    verdicts["data_drift"] = verdict
    return revised


def late_metrics(session: Session, row: Evaluation, key: str, extra: dict[str, float] | None = None) -> None:
    """The completed figures for the evaluation's MLflow run, exactly once.

    PostgreSQL, run still queued: merged into its payload (one run, logged once with everything); safe
    because this transaction holds the run row's lock, which the logger holds while it logs. Otherwise
    (run logged already, or SQLite, where nothing locks a run being logged): a ``late_run_metrics``
    outbox row (``monitor.late_metrics``), logged into the run after the run exists, under the labels'
    digest (a retry finds the digest tag and does not log twice)."""
    from monitor import late_metrics as late
    from monitor.evaluation import _mlflow_metrics

    class _Report:  # what _mlflow_metrics reads of a report
        def __init__(self, data: dict[str, Any]) -> None:
            self.performance = data.get("performance") or {}
            self.features = {}

    metrics = {k: v for k, v in _mlflow_metrics(row, _Report(row.report or {})).items()
               if k in ("concept_drift", "mse", "mae", "baseline_mse", "baseline_mae") or k.startswith(
                   ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier", "recall", "baseline_"))}
    metrics["n_labelled"] = float(row.n_labelled or 0)
    labels_block = (row.report or {}).get("labels") or {}
    metrics["label_drift"] = float(bool(labels_block.get("label_drift")))
    if "data_drift" in (labels_block.get("revised") or []):
        metrics["data_drift"] = 1.0
    metrics.update({k: v for k, v in estimate_metrics(row.estimate).items() if k.startswith("estimate_")})
    metrics.update(extra or {})  # challengers scored on the labelled rows
    result = {"labels": (row.report or {}).get("labels"), "concept": (row.report or {}).get("concept"),
              "performance": (row.report or {}).get("performance"), "estimate": row.estimate}
    run = session.scalar(sa.select(MonitoringRun).where(MonitoringRun.evaluation_id == row.id)
                         .with_for_update())
    if run is None:
        return
    payload = dict(run.payload or {})
    locked = session.get_bind().dialect.name == "postgresql"
    if locked and run.status == "pending" and not payload.get("late"):
        payload["metrics"] = {**(payload.get("metrics") or {}), **metrics}
        payload["result"] = {**(payload.get("result") or {}), "labels": result}
        payload["tags"] = {**(payload.get("tags") or {}), "driftline.labels": "received"}
        run.payload = payload
        return
    late.queue(session, row.id, key, metrics, result)


# --- the estimator's track record ------------------------------------------------------------------
def track_record_of(session: Session, model_name: str) -> TrackRecord:
    """Over the model's last ``TRACK_RECORD_BATCHES`` evaluations with an estimate and labels."""
    rows = session.execute(
        sa.select(Evaluation.estimate).where(Evaluation.model_name == model_name, Evaluation.status == "ok",
                                             Evaluation.estimate.is_not(None),
                                             Evaluation.labels.in_(("at_push", "received")))
        .order_by(Evaluation.id.desc()).limit(TRACK_RECORD_BATCHES)).scalars().all()
    judgements = []
    for estimate in rows:
        primary = (estimate or {}).get("primary")
        judged = ((estimate or {}).get("judged") or {}).get(primary)
        if judged:
            judgements.append(judged)
    return track_record(judgements)


def track_records(session: Session) -> dict[str, TrackRecord]:
    names = session.scalars(sa.select(Evaluation.model_name).where(Evaluation.estimate.is_not(None))
                            .distinct()).all()
    return {name: track_record_of(session, name) for name in names}


def _num(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class EstimateCollector:
    """/metrics: the label-free estimate's track record per model."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        try:
            with self.sessions() as session:
                records = track_records(session)
                pending = dict(session.execute(
                    sa.select(Evaluation.model_name, sa.func.count()).where(Evaluation.labels == "pending")
                    .group_by(Evaluation.model_name)).all())
        except sa.exc.SQLAlchemyError:
            return  # driftline_monitor_database_up says why
        error = GaugeMetricFamily("driftline_estimate_mean_abs_relative_error",
                                  "Mean |estimate - realized| / realized of the label-free estimate "
                                  "(primary metric) over the model's labelled batches", labels=["model"])
        coverage = GaugeMetricFamily("driftline_estimate_interval_coverage",
                                     "Share of labelled batches whose realized value fell in the estimate's "
                                     "interval (nominal: driftline_estimate_nominal_coverage)",
                                     labels=["model"])
        nominal = GaugeMetricFamily("driftline_estimate_nominal_coverage",
                                    "Nominal coverage of the estimate's interval", labels=["model"])
        judged = GaugeMetricFamily("driftline_estimate_labelled_batches",
                                   "Labelled batches the track record is computed over", labels=["model"])
        unreliable = GaugeMetricFamily("driftline_estimate_unreliable",
                                       "1 when the interval's coverage is far below nominal",
                                       labels=["model"])
        waiting = GaugeMetricFamily("driftline_batches_awaiting_labels",
                                    "Evaluations whose labels have not come yet", labels=["model"])
        for name, record in records.items():
            judged.add_metric([name], record.batches)
            nominal.add_metric([name], record.nominal)
            unreliable.add_metric([name], float(record.unreliable))
            if record.mean_abs_relative_error is not None:
                error.add_metric([name], record.mean_abs_relative_error)
            if record.coverage is not None:
                coverage.add_metric([name], record.coverage)
        for name, count in pending.items():
            waiting.add_metric([name], count)
        yield from (error, coverage, nominal, judged, unreliable, waiting)
