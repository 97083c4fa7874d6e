"""Reference profiles per (model, version, drift config): built once from the version's logged
reference data, kept in memory, and persisted in the database so restarts and other replicas reuse it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from monitor.models import StoredProfile
from monitor.registry import LoadedModel, Registry
from monitor.settings import drift_config_hash

log = logging.getLogger(__name__)


class ProfileStore:
    def __init__(self, registry: Registry, sessions: sessionmaker, max_profiles: int = 256) -> None:
        self.registry = registry
        self.sessions = sessions
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self._build_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._max = max_profiles

    def get(self, model: LoadedModel, drift: dict[str, Any]) -> Any:
        """The ReferenceProfile for this model version and drift configuration."""
        key = (model.name, model.version, drift_config_hash(drift))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            profile = self._load_stored(key) or self._build_and_store(key, model, drift)
            with self._lock:
                if len(self._cache) >= self._max:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = profile
            return profile

    def clear_memory(self) -> None:
        with self._lock:
            self._cache.clear()

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

    def _build_and_store(self, key: tuple[str, str, str], model: LoadedModel, drift: dict[str, Any]) -> Any:
        profile = build_profile(self.registry, model, drift)
        try:
            with self.sessions.begin() as session:
                session.add(StoredProfile(model_name=key[0], model_version=key[1], config_hash=key[2],
                                          profile=profile.to_bytes()))
        except IntegrityError:
            pass  # another process stored the same profile first: both are built from the same data
        return profile


def build_profile(registry: Registry, model: LoadedModel, drift: dict[str, Any]) -> Any:
    """Fit the drift detector on the training features; model-output baselines from all reference rows.

    Features come from the train split only (what the model learned from). The residual and prediction
    baselines use train + holdout: the holdout alone is small (20 rows in the seed's split) and the
    engine wants one prediction per profiled row, so the outputs get their own fit and are grafted on.
    """
    from monitor.drift import DriftConfig, DriftDetector

    config = DriftConfig.from_dict(drift)
    train, holdout = registry.reference_frames(model)
    missing = [c for c in [*model.features, model.target] if c not in train.columns]
    if missing:
        raise ValueError(f"{model.name} v{model.version}: reference/train.parquet lacks columns {missing}; "
                         f"it must hold the features ({', '.join(model.features)}) and the target")
    detector = DriftDetector(config).fit(train[model.features],
                                         metadata={"model": model.name, "version": model.version})
    outputs = pd.concat([train, holdout], ignore_index=True) if holdout is not None else train
    outputs = outputs.dropna(subset=[*model.features, model.target])
    predictions = np.asarray(model.predict(outputs[model.features]), dtype=float).reshape(-1)
    baseline = DriftDetector(config).fit(outputs[model.features], predictions=predictions,
                                         labels=outputs[model.target].to_numpy(dtype=float))
    profile = detector.profile_
    profile.predictions = baseline.profile_.predictions
    profile.residuals = baseline.profile_.residuals
    return profile
