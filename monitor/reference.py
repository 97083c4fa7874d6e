"""Reference profiles per (model, version, drift config): built once from the version's reference
data, kept in memory, and persisted in the database so restarts and other replicas reuse it.

Where the reference comes from, first match wins (docs/team-models.md):

1. Driftline's own artifact ``reference/train.parquet`` (+ ``reference/holdout.parquet``) on the run;
2. the run's dataset inputs whose source loads (``mlflow.data.from_pandas(df, source=URI, ...)`` +
   ``mlflow.log_input(..., context="training")``; an ``evaluation`` dataset is the holdout);
3. a reference uploaded for the version (``PUT /api/models/<name>/versions/<v>/reference``, CLI);
4. a reference window: the first N labelled rows received for the version
   (``MONITOR_REFERENCE_WINDOW_ROWS``); while it fills, evaluations are "collecting", with no verdict.

The label-free performance estimator (monitor/estimation.py) is not part of the profile: its fit
(cross-fitted boosted loss models, about 9 CPU s on a 10,000-row reference) is most of a cold
profile's cost and only batches pushed without labels need it. ``ProfileStore.estimator`` fits it
from the same reference rows at a version's first such batch (or when a push model is warmed), stores
it, and from then on every evaluation of the version, labelled or not, gets the estimate.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from monitor.models import ReferenceUpload, ReferenceWindowRows, StoredProfile
from monitor.registry import LoadedModel, ReferenceData, Registry
from monitor.settings import drift_config_hash
from monitor.tree_predict import speed_up

log = logging.getLogger(__name__)
NONE_STORED_SECONDS = 5.0

FOUR_WAYS = (
    "log a reference with the training run (a reference/train.parquet artifact, or "
    "mlflow.log_input(mlflow.data.from_pandas(train, source=<URI of a logged file>, targets=<target>), "
    "context='training')), upload one (PUT /api/models/{name}/versions/{version}/reference with CSV or "
    "Parquet, or `python -m monitor reference upload`), or turn on the reference window "
    "(MONITOR_REFERENCE_WINDOW_ROWS > 0: the first labelled rows pushed become the reference)"
)


class ReferenceNotFound(Exception):
    """No reference data for a version by any of the four ways; the message names them."""


@dataclass
class ReferenceChoice:
    """The profile an evaluation uses and where its data came from; or a window still filling."""

    profile: Any
    kind: str  # artifact | dataset | upload | window
    source: str
    window_rows: int = 0  # rows collected so far (while collecting)
    window_size: int = 0
    key: str = ""  # the profile's identity in the store (``ProfileStore.pinned`` finds it again)

    @property
    def collecting(self) -> bool:
        return self.profile is None


class ProfileStore:
    def __init__(self, registry: Registry, sessions: sessionmaker, max_profiles: int = 256) -> None:
        self.registry = registry
        self.sessions = sessions
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self._build_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._no_mlflow: set[tuple[str, str]] = set()  # versions without an MLflow reference
        self._choices: dict[tuple[str, ...], tuple[ReferenceChoice, float]] = {}  # upload / full window
        # Label-free estimators by profile key: fitted or stored ones, None when none is possible.
        self._estimators: dict[tuple[str, str, str], Any] = {}
        # Versions whose stored estimator a labelled batch found missing, and when: another process
        # may fit one, so looked for again after NONE_STORED_SECONDS, not on every labelled push.
        self._none_stored: dict[tuple[str, str, str], float] = {}
        self._max = max_profiles

    def get(self, model: LoadedModel, drift: dict[str, Any]) -> Any:
        """The ReferenceProfile from MLflow-recorded reference data (ValueError when there is none)."""
        choice = self.resolve(model, drift, window_size=0)
        return choice.profile

    def resolve(self, model: LoadedModel, drift: dict[str, Any], window_size: int,
                max_age: float = 0.0) -> ReferenceChoice:
        """The reference for this version, by the four ways in order (module docstring).

        ``max_age`` > 0 (pushes: ``MONITOR_PUSH_ALIAS_MAX_AGE_SECONDS``): an upload or a full window
        found this long ago is used without asking the database again."""
        base = drift_config_hash({**drift, "_task": model.task, "_target": model.target})
        version_key = (model.name, model.version)
        if version_key not in self._no_mlflow:
            key = (model.name, model.version, base)
            profile = self._cached(key, lambda: self._from_mlflow(model, drift))
            if profile is not None:
                meta = profile.metadata.get("reference") or {}
                return ReferenceChoice(profile, meta.get("kind", "artifact"), meta.get("source", ""),
                                       key=base)
            self._no_mlflow.add(version_key)
        choice_key = (model.name, model.version, base, str(window_size))
        with self._lock:
            seen = self._choices.get(choice_key)
        if seen is not None and max_age > 0 and time.monotonic() - seen[1] <= max_age:
            return seen[0]
        asked = time.monotonic()
        choice = self._from_database(model, drift, window_size, base)
        if not choice.collecting:
            with self._lock:
                self._choices[choice_key] = (choice, asked)
        return choice

    def _from_database(self, model: LoadedModel, drift: dict[str, Any], window_size: int,
                       base: str) -> ReferenceChoice:
        with self.sessions() as session:
            upload = session.execute(sa.select(ReferenceUpload.id, ReferenceUpload.created_at).where(
                ReferenceUpload.model_name == model.name,
                ReferenceUpload.model_version == model.version)).first()
            collected = 0 if upload is not None else int(session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(ReferenceWindowRows.n_rows), 0)).where(
                    ReferenceWindowRows.model_name == model.name,
                    ReferenceWindowRows.model_version == model.version)) or 0)
        if upload is not None:
            source = f"upload {upload.id} ({upload.created_at:%Y-%m-%d %H:%M} UTC)"
            key = f"{base}:upload{upload.id}"
            profile = self._cached((model.name, model.version, key),
                                   lambda: self._fit(model, drift, self._upload_data(upload.id, source)))
            return ReferenceChoice(profile, "upload", source, key=key)
        if window_size <= 0:
            raise ReferenceNotFound(
                f"no reference data for {model.name} version {model.version}: "
                + FOUR_WAYS.format(name=model.name, version=model.version))
        if collected < window_size:
            return ReferenceChoice(None, "window", f"reference window, first {window_size} labelled rows",
                                   window_rows=collected, window_size=window_size)
        source = f"reference window: the first {window_size} labelled rows received for this version"
        key = f"{base}:window{window_size}"
        profile = self._cached((model.name, model.version, key),
                               lambda: self._fit(model, drift, self._window_data(model, window_size, source)))
        return ReferenceChoice(profile, "window", source, window_rows=window_size, window_size=window_size,
                               key=key)

    def upload(self, model: LoadedModel, frame: pd.DataFrame, drift: dict[str, Any]) -> dict[str, Any]:
        """Store ``frame`` as the version's uploaded reference (replacing an earlier upload and the
        window). The profile is fitted first, so data the engine cannot use is refused (ValueError)
        before anything is written."""
        from monitor.registry import TrackingUnavailable

        data = ReferenceData(frame.reset_index(drop=True), None, "upload", "upload")
        try:
            build_profile_from(model, drift, data)
        except TrackingUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the model or the engine cannot use these rows
            raise ValueError(" ".join(str(exc).split())[:400]) from exc
        buffer = io.BytesIO()
        data.train.to_parquet(buffer, index=False)
        with self.sessions.begin() as session:
            session.execute(sa.delete(ReferenceUpload).where(
                ReferenceUpload.model_name == model.name, ReferenceUpload.model_version == model.version))
            row = ReferenceUpload(model_name=model.name, model_version=model.version, data=buffer.getvalue(),
                                  n_rows=len(data.train), columns=[str(c) for c in data.train.columns])
            session.add(row)
            session.flush()
            upload_id = row.id
        self.forget(model.name, model.version)
        in_mlflow = (model.name, model.version) not in self._no_mlflow and \
            self.registry.mlflow_reference(model) is not None
        return {"model": model.name, "version": model.version, "upload_id": upload_id,
                "rows": len(data.train), "columns": [str(c) for c in data.train.columns],
                "in_use": not in_mlflow,
                "note": ("MLflow already records a reference for this version, which comes first"
                         if in_mlflow else "used from the next evaluation on (replaces any window)")}

    def pinned(self, model: LoadedModel, key: str) -> Any:
        """The profile stored under ``key`` (a ``ReferenceChoice.key``), whatever reference is in force
        now; None when it is not stored. Labels that come later are scored against the profile their
        batch was scored against at push (``monitor.labels``)."""
        full = (model.name, model.version, key)
        with self._lock:
            if full in self._cache:
                return self._cache[full]
        return self._load_stored(full)

    def estimator(self, model: LoadedModel, key: str, profile: Any, *, fit: bool) -> Any:
        """The version's label-free estimator for the profile stored under ``key``, or None.

        From memory, else from the database (another process may have fitted it); when neither has
        one and ``fit``, fitted now from the reference rows and stored (a batch pushed without labels
        needs its estimate now). Without ``fit`` (a labelled batch: its estimate is only judged for
        the track record) a version that never needed one gets none, and no fit is paid. A fit that
        fails (tracking server down) gives None without storing anything: the next batch retries."""
        full = (model.name, model.version, key)
        with self._lock:
            if full in self._estimators:
                return self._estimators[full]
            if not fit and time.monotonic() - self._none_stored.get(full, -math.inf) < NONE_STORED_SECONDS:
                return None
            build_lock = self._build_locks.setdefault(("estimator", *full), threading.Lock())
        from monitor.estimators import load_estimator, store_estimator

        with build_lock:
            with self._lock:
                if full in self._estimators:
                    return self._estimators[full]
            found, estimator = load_estimator(self.sessions, full)
            if not found:
                if not fit:
                    with self._lock:
                        if len(self._none_stored) >= 4 * self._max:
                            self._none_stored.clear()
                        self._none_stored[full] = time.monotonic()
                    return None  # no fit for a labelled batch; looked for again in a few seconds
                try:
                    data = self._reference_data(model, key)
                    if data is None:
                        return None
                    estimator = fit_estimator_from(model, data, profile)
                except Exception as exc:  # noqa: BLE001 - an estimate is an extra: the verdicts stand
                    log.warning("no performance estimator for %s v%s now: %s", model.name, model.version, exc)
                    return None
                store_estimator(self.sessions, full, estimator)
            # The estimate's boosted trees predict all at once, bit-identical (monitor/tree_predict.py).
            speed_up(estimator)
            with self._lock:
                if len(self._estimators) >= self._max:
                    self._estimators.pop(next(iter(self._estimators)))
                self._estimators[full] = estimator
            return estimator

    def _reference_data(self, model: LoadedModel, key: str) -> ReferenceData | None:
        """The rows the profile under ``key`` was built from (``ReferenceChoice.key`` names the way)."""
        tail = key.rsplit(":", 1)[-1] if ":" in key else ""
        if tail.startswith("upload") and tail[6:].isdigit():
            return self._upload_data(int(tail[6:]), f"upload {tail[6:]}")
        if tail.startswith("window") and tail[6:].isdigit():
            return self._window_data(model, int(tail[6:]), "reference window")
        return self.registry.mlflow_reference(model)

    def forget(self, name: str, version: str) -> None:
        """Drop memory caches of a version (after an upload) so the next evaluation re-resolves it."""
        with self._lock:
            for key in [k for k in self._cache if k[:2] == (name, version)]:
                self._cache.pop(key, None)
            for choice_key in [k for k in self._choices if k[:2] == (name, version)]:
                self._choices.pop(choice_key, None)
            for key in [k for k in self._estimators if k[:2] == (name, version)]:
                self._estimators.pop(key, None)
            for key in [k for k in self._none_stored if k[:2] == (name, version)]:
                self._none_stored.pop(key, None)

    def _cached(self, key: tuple[str, str, str], build: Any) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            profile = self._load_stored(key)
            if profile is None:
                profile = build()
                if profile is None:
                    return None
                self._store(key, profile)
            with self._lock:
                if len(self._cache) >= self._max:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = profile
            return profile

    def clear_memory(self) -> None:
        with self._lock:
            self._cache.clear()
            self._estimators.clear()
            self._no_mlflow.clear()
            self._choices.clear()

    def _from_mlflow(self, model: LoadedModel, drift: dict[str, Any]) -> Any:
        data = self.registry.mlflow_reference(model)
        return None if data is None else self._fit(model, drift, data)

    def _fit(self, model: LoadedModel, drift: dict[str, Any], data: ReferenceData) -> Any:
        profile = build_profile_from(model, drift, data)
        profile.metadata["reference"] = {"kind": data.kind, "source": data.source,
                                         "rows": int(len(data.train))}
        return profile

    def _upload_data(self, upload_id: int, source: str) -> ReferenceData | None:
        with self.sessions() as session:
            blob = session.scalar(sa.select(ReferenceUpload.data).where(ReferenceUpload.id == upload_id))
        if blob is None:
            return None  # replaced since (only the estimator of a pinned profile asks for it then)
        return ReferenceData(pd.read_parquet(io.BytesIO(bytes(blob))), None, "upload", source)

    def _window_data(self, model: LoadedModel, size: int, source: str) -> ReferenceData:
        frames, total = [], 0
        with self.sessions() as session:
            blobs = session.scalars(sa.select(ReferenceWindowRows.data).where(
                ReferenceWindowRows.model_name == model.name,
                ReferenceWindowRows.model_version == model.version).order_by(ReferenceWindowRows.id))
            for blob in blobs:
                frames.append(pd.read_parquet(io.BytesIO(bytes(blob))))
                total += len(frames[-1])
                if total >= size:
                    break
        return ReferenceData(pd.concat(frames, ignore_index=True).head(size), None, "window", source)

    def _load_stored(self, key: tuple[str, str, str]) -> Any:
        from monitor.drift import ReferenceProfile

        with self.sessions() as session:
            blob = session.scalar(sa.select(StoredProfile.profile).where(
                StoredProfile.model_name == key[0], StoredProfile.model_version == key[1],
                StoredProfile.config_hash == key[2]))
        if blob is None:
            return None
        try:
            return ReferenceProfile.from_bytes(bytes(blob))
        except Exception:  # noqa: BLE001 - an old format is rebuilt rather than trusted
            log.warning("stored profile for %s v%s is unreadable; rebuilding", key[0], key[1])
            return None

    def _store(self, key: tuple[str, str, str], profile: Any) -> None:
        try:
            with self.sessions.begin() as session:
                session.add(StoredProfile(model_name=key[0], model_version=key[1], config_hash=key[2],
                                          profile=profile.to_bytes()))
        except IntegrityError:
            pass  # another process stored the same profile first: both are built from the same data


def model_features(model: LoadedModel, columns: Any) -> list[str]:
    """The model's inputs: its signature (or features tag), else the reference columns but the target."""
    return list(model.features) or [str(c) for c in columns if str(c) != model.target]


def build_profile_from(model: LoadedModel, drift: dict[str, Any], data: ReferenceData) -> Any:
    """Fit the drift detector on the reference features; model-output baselines from all reference rows.

    Features come from the train part only (what the model learned from). The output baselines
    (residuals, or per-row loss, classes and scores for a classifier) use train + holdout: the holdout
    alone is small (20 rows in the seed's split). The label-free estimator is fitted apart, when
    first needed (``ProfileStore.estimator``, ``fit_estimator_from``).
    """
    from monitor.drift import DriftConfig, DriftDetector

    config = DriftConfig.from_dict(drift)
    features, outputs = _labelled_rows(model, data)
    detector = DriftDetector(config).fit(data.train[features],
                                         metadata={"model": model.name, "version": model.version})
    profile = detector.profile_
    if model.task == "classification":
        from monitor.drift.classification import fit_classification

        labels = outputs[model.target].to_numpy()
        predicted = np.asarray(model.predict(outputs[features])).reshape(-1)
        proba = model.predict_proba(outputs[features])
        profile.classification = fit_classification(labels, predicted, proba, model.classes,
                                                    config.psi_bins)
        profile.metadata["target"] = model.target
        return profile
    predictions = np.asarray(model.predict(outputs[features]), dtype=float).reshape(-1)
    baseline = DriftDetector(config).fit(outputs[features], predictions=predictions,
                                         labels=outputs[model.target].to_numpy(dtype=float))
    profile.predictions = baseline.profile_.predictions
    profile.residuals = baseline.profile_.residuals
    return profile


def _labelled_rows(model: LoadedModel, data: ReferenceData) -> tuple[list[str], pd.DataFrame]:
    """The model's inputs and the reference rows (train + holdout) with every input and the target."""
    train, holdout = data.train, data.holdout
    features = model_features(model, train.columns)
    missing = [c for c in [*features, model.target] if c not in train.columns]
    if missing:
        raise ValueError(f"{model.name} v{model.version}: the reference ({data.source}) lacks columns "
                         f"{missing}; it must hold the model inputs ({', '.join(features)}) and the "
                         f"target '{model.target}' (target from {model.target_from})")
    outputs = pd.concat([train, holdout], ignore_index=True) if holdout is not None else train
    return features, outputs.dropna(subset=[*features, model.target]).reset_index(drop=True)


def fit_estimator_from(model: LoadedModel, data: ReferenceData, profile: Any) -> Any:
    """The label-free estimator from the reference rows ``profile`` was built from (the same rows,
    predictions and labels as its output baselines), or None (``fit_estimator``)."""
    try:
        features, outputs = _labelled_rows(model, data)
    except ValueError as exc:
        log.warning("no performance estimator for %s v%s: %s", model.name, model.version, exc)
        return None
    if getattr(profile, "classification", None) is not None:
        predicted = np.asarray(model.predict(outputs[features])).reshape(-1)
        proba = model.predict_proba(outputs[features])
        return fit_estimator(model, outputs, features, predicted, outputs[model.target].to_numpy(), proba,
                             profile.classification.classes)
    predictions = np.asarray(model.predict(outputs[features]), dtype=float).reshape(-1)
    return fit_estimator(model, outputs, features, predictions, outputs[model.target].to_numpy(dtype=float),
                         None)


def fit_estimator(model: LoadedModel, outputs: pd.DataFrame, features: list[str], predictions: Any,
                  labels: Any, proba: Any, classes: list[str] | None = None) -> Any:
    """The label-free performance estimator (monitor/estimation.py) from the reference's labelled rows,
    or None when it cannot be fitted: then batches without labels get no estimate, nothing else changes."""
    from monitor import estimation

    try:
        if model.task == "classification":
            return estimation.fit_classifier_estimator(labels, predictions, proba, list(classes or []))
        return estimation.fit_regression_estimator(outputs[features], features, predictions, labels)
    except Exception as exc:  # noqa: BLE001 - an estimate is an extra: never block the drift verdicts
        log.warning("no performance estimator for %s v%s: %s", model.name, model.version, exc)
        return None


def build_profile(registry: Registry, model: LoadedModel, drift: dict[str, Any]) -> Any:
    """The profile from MLflow-recorded reference data (the first two of the four ways)."""
    data = registry.mlflow_reference(model)
    if data is None:
        raise ReferenceNotFound(f"no reference data in MLflow for {model.name} version {model.version}")
    return build_profile_from(model, drift, data)
