"""The registry side: finding reusable versions, validating a version, and moving aliases.

The alias moves and the version checks live in the shared package ``model_registry`` (the monitor
promotes and rolls back with the same code); this module turns their errors into the trainer's
(``RunFailed``, ``RegistryError``: a message, what to do, an exit code).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from model_registry import aliases as _aliases
from model_registry.aliases import (  # noqa: F401 - re-exported: the trainer's registry API
    CHAMPION,
    HISTORY_MAX_CHARS,
    PREVIOUS,
    TAG_HISTORY,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_REASON,
    TAG_ROLLED_BACK,
    AliasMove,
    alias_history,
    alias_version,
    append_history,
    make_champion,
    move_alias,
    now_iso,
)
from model_registry.checks import VersionCheckFailed
from model_registry.checks import predict_version as _predict_version
from trainer.errors import RegistryError, RunFailed

TAG_TARGET = "driftline.target"
TAG_FEATURES = "driftline.features"
TAG_FINGERPRINT = "driftline.data_fingerprint"
TAG_CODE_VERSION = "driftline.code_version"
TAG_CANDIDATE = "driftline.candidate_id"
TAG_KIND = "driftline.model_kind"
TAG_PARAMS = "driftline.params"
TAG_HOLDOUT_MSE = "driftline.holdout_mse"

def find_candidate_version(client: MlflowClient, name: str, candidate_id: str) -> ModelVersion | None:
    """The oldest version of `name` tagged with this candidate id, if one exists."""
    try:
        found = client.search_model_versions(
            f"name = '{_quote(name)}' and tags.`{TAG_CANDIDATE}` = '{candidate_id}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    ready = [v for v in found if v.status == "READY"]
    return min(ready, key=lambda v: int(v.version)) if ready else None


def holdout_mse(version: ModelVersion) -> float:
    """The hold-out MSE recorded on a version, or +inf when it has none."""
    try:
        value = float(version.tags.get(TAG_HOLDOUT_MSE, "inf"))
    except ValueError:
        return math.inf
    return value if math.isfinite(value) else math.inf


def predict_version(name: str, version: str, features: pd.DataFrame) -> np.ndarray:
    """Load `models:/name/version` as any client would and predict; RunFailed if it misbehaves."""
    try:
        return _predict_version(name, version, features)
    except VersionCheckFailed as exc:
        raise RunFailed(exc.what, exc.hint) from exc


def rollback(client: MlflowClient, name: str, by: str, reason: str) -> list[AliasMove]:
    """Swap champion and previous; RegistryError when there is no previous to go back to."""
    try:
        return _aliases.rollback(client, name, by, reason)
    except _aliases.NoSuchModel as exc:
        raise RegistryError(str(exc), "check --model, or run `train` first") from exc
    except _aliases.NothingToRollBack as exc:
        raise RegistryError(str(exc), "use `promote --model NAME --version V` to choose a champion") from exc


def require_model(client: MlflowClient, name: str) -> None:
    try:
        _aliases.require_model(client, name)
    except _aliases.NoSuchModel as exc:
        raise RegistryError(str(exc), "check --model, or run `train` first") from exc


def best_version(client: MlflowClient, name: str) -> ModelVersion:
    versions = [v for v in _all_versions(client, name) if v.status == "READY"]
    scored = [v for v in versions if math.isfinite(holdout_mse(v))]
    if not scored:
        raise RegistryError(f"model {name!r} has no version with a recorded hold-out MSE",
                            "pass --version to choose one, or run `train` first")
    return min(scored, key=lambda v: (holdout_mse(v), int(v.version)))


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    require_model(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"model {name!r} has no version {version}",
                            "list versions in the MLflow UI or omit --version") from exc


def _all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    require_model(client, name)
    return list(client.search_model_versions(f"name = '{_quote(name)}'"))


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
