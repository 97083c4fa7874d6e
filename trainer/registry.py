"""The registry side: finding reusable versions, validating a version, and moving aliases.

Aliases: `champion` is what the monitor and users load (`models:/<name>@champion`); `previous` is
the champion before the last move. Every move stamps the promoted version with
`driftline.promoted_by/at` and `driftline.promotion_reason`, and appends {alias, version, at, by,
reason} to the JSON list in the registered model tag `driftline.alias_history` (newest last,
oldest entries dropped to stay under 5000 characters, the tag column's size).

Rollback swaps: champion <- previous and previous <- the old champion, so a second rollback
undoes the first. The version rolled away from is tagged `driftline.rolled_back_at`; `train` never
re-promotes such a version by itself (an explicit `promote` does, and clears the tag).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from trainer.errors import RegistryError, RunFailed

CHAMPION = "champion"
PREVIOUS = "previous"
TAG_TARGET = "driftline.target"
TAG_FEATURES = "driftline.features"
TAG_FINGERPRINT = "driftline.data_fingerprint"
TAG_CODE_VERSION = "driftline.code_version"
TAG_CANDIDATE = "driftline.candidate_id"
TAG_KIND = "driftline.model_kind"
TAG_PARAMS = "driftline.params"
TAG_HOLDOUT_MSE = "driftline.holdout_mse"
TAG_PROMOTED_BY = "driftline.promoted_by"
TAG_PROMOTED_AT = "driftline.promoted_at"
TAG_REASON = "driftline.promotion_reason"
TAG_HISTORY = "driftline.alias_history"
TAG_ROLLED_BACK = "driftline.rolled_back_at"
HISTORY_MAX_CHARS = 5000


@dataclass(frozen=True)
class AliasMove:
    model_name: str
    alias: str
    version: str
    replaced: str | None
    reason: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


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
    import mlflow.pyfunc

    uri = f"models:/{name}/{version}"
    try:
        model = mlflow.pyfunc.load_model(uri)
        predictions = np.asarray(model.predict(features), dtype="float64").reshape(-1)
    except Exception as exc:  # noqa: BLE001 - any failure means the version is unusable
        raise RunFailed(f"{uri} failed validation ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                        "no alias was moved; check the model's run for what went wrong") from exc
    if predictions.shape != (len(features),) or not np.isfinite(predictions).all():
        raise RunFailed(f"{uri} failed validation: expected {len(features)} finite predictions, "
                        f"got shape {predictions.shape}", "no alias was moved; check the model")
    return predictions


def move_alias(client: MlflowClient, name: str, alias: str, version: str, by: str, reason: str,
               record: list[dict] | None = None) -> None:
    """Point `alias` at `version`, stamp the version and note the move in `record`."""
    client.set_registered_model_alias(name, alias, version)
    at = now_iso()
    if alias == CHAMPION:
        client.set_model_version_tag(name, version, TAG_PROMOTED_BY, by)
        client.set_model_version_tag(name, version, TAG_PROMOTED_AT, at)
        client.set_model_version_tag(name, version, TAG_REASON, reason[:4000])
    if record is not None:
        record.append({"alias": alias, "version": str(version), "at": at, "by": by, "reason": reason[:500]})


def append_history(client: MlflowClient, name: str, entries: list[dict]) -> None:
    if not entries:
        return
    history = alias_history(client, name) + entries
    text = json.dumps(history, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(history) > 1:
        history = history[1:]
        text = json.dumps(history, separators=(",", ":"))
    client.set_registered_model_tag(name, TAG_HISTORY, text)


def alias_history(client: MlflowClient, name: str) -> list[dict]:
    raw = client.get_registered_model(name).tags.get(TAG_HISTORY)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError:
        return []
    return history if isinstance(history, list) else []


def make_champion(client: MlflowClient, name: str, version: str, by: str, reason: str, *,
                  rolled_back: bool | None = None) -> list[AliasMove]:
    """champion -> version; the old champion (if any, and different) becomes previous.

    The version's `driftline.rolled_back_at` tag is cleared; `rolled_back=False` says the caller
    knows it has none (saves the round trips), `None` means unknown.
    """
    old = alias_version(client, name, CHAMPION)
    if old is not None and old.version == str(version):
        return []
    record: list[dict] = []
    moves = []
    move_alias(client, name, CHAMPION, str(version), by, reason, record)
    if rolled_back is not False:
        with contextlib.suppress(MlflowException):
            client.delete_model_version_tag(name, str(version), TAG_ROLLED_BACK)
    moves.append(AliasMove(name, CHAMPION, str(version), old.version if old else None, reason))
    if old is not None:
        prev_reason = f"was champion until v{version} replaced it"
        move_alias(client, name, PREVIOUS, old.version, by, prev_reason, record)
        moves.append(AliasMove(name, PREVIOUS, old.version, None, prev_reason))
    append_history(client, name, record)
    return moves


def rollback(client: MlflowClient, name: str, by: str, reason: str) -> list[AliasMove]:
    """Swap champion and previous; RegistryError when there is no previous to go back to."""
    require_model(client, name)
    previous = alias_version(client, name, PREVIOUS)
    if previous is None:
        raise RegistryError(f"model {name!r} has no {PREVIOUS!r} alias, nothing to roll back to",
                            "use `promote --model NAME --version V` to choose a champion")
    current = alias_version(client, name, CHAMPION)
    record: list[dict] = []
    moves = [AliasMove(name, CHAMPION, previous.version, current.version if current else None, reason)]
    move_alias(client, name, CHAMPION, previous.version, by, reason, record)
    if current is not None and current.version != previous.version:
        prev_reason = f"rolled back from champion to v{previous.version}"
        move_alias(client, name, PREVIOUS, current.version, by, prev_reason, record)
        # `train` will not re-promote a rolled-back version on its own; `promote` can.
        client.set_model_version_tag(name, current.version, TAG_ROLLED_BACK, record[-1]["at"])
        moves.append(AliasMove(name, PREVIOUS, current.version, None, prev_reason))
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    append_history(client, name, record)
    return moves


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


def require_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"no registered model named {name!r}",
                                "check --model, or run `train` first") from exc
        raise


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
