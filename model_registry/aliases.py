"""Alias moves with their record: who or what moved an alias, why, and on what evidence.

`champion` is what the monitor and users load (`models:/<name>@champion`); `previous` is the
champion before the last move. Every move stamps the promoted version with
`driftline.promoted_by/at`, `driftline.promotion_reason` (and `driftline.promotion_evidence`, JSON,
when there is evidence), and appends {alias, version, at, by, reason[, evidence]} to the JSON list in
the registered model tag `driftline.alias_history` (newest last, oldest entries dropped to stay under
5000 characters, the tag column's size): the dashboard's alias history.

Rollback swaps: champion <- previous and previous <- the old champion, so a second rollback
undoes the first. The version rolled away from is tagged `driftline.rolled_back_at`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"
TAG_PROMOTED_BY = "driftline.promoted_by"
TAG_PROMOTED_AT = "driftline.promoted_at"
TAG_REASON = "driftline.promotion_reason"
TAG_EVIDENCE = "driftline.promotion_evidence"
TAG_HISTORY = "driftline.alias_history"
TAG_ROLLED_BACK = "driftline.rolled_back_at"
HISTORY_MAX_CHARS = 5000
EVIDENCE_MAX_CHARS = 4000


class NoSuchModel(Exception):
    """The registered model does not exist."""


class NothingToRollBack(Exception):
    """The model has no `previous` alias."""


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


def _evidence_text(evidence: dict[str, Any] | None) -> str | None:
    if not evidence:
        return None
    return json.dumps(evidence, separators=(",", ":"), default=str, sort_keys=True)[:EVIDENCE_MAX_CHARS]


def move_alias(client: MlflowClient, name: str, alias: str, version: str, by: str, reason: str,
               record: list[dict] | None = None, evidence: dict[str, Any] | None = None) -> None:
    """Point `alias` at `version`, stamp the version and note the move in `record`."""
    client.set_registered_model_alias(name, alias, version)
    at = now_iso()
    if alias == CHAMPION:
        client.set_model_version_tag(name, version, TAG_PROMOTED_BY, by)
        client.set_model_version_tag(name, version, TAG_PROMOTED_AT, at)
        client.set_model_version_tag(name, version, TAG_REASON, reason[:4000])
        if (text := _evidence_text(evidence)) is not None:
            client.set_model_version_tag(name, version, TAG_EVIDENCE, text)
    if record is not None:
        entry = {"alias": alias, "version": str(version), "at": at, "by": by, "reason": reason[:500]}
        if evidence:
            entry["evidence"] = _short_evidence(evidence)
        record.append(entry)


def _short_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """The few numbers that fit in the history tag (the version tag keeps the whole evidence)."""
    keep = ("batches", "mean_relative_gain", "e_value_better", "e_value_worse", "threshold", "alpha",
            "decision_id")
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in evidence.items() if k in keep}


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
                  rolled_back: bool | None = None, evidence: dict[str, Any] | None = None,
                  drop_alias: str | None = None) -> list[AliasMove]:
    """champion -> version; the old champion (if any, and different) becomes previous.

    The version's `driftline.rolled_back_at` tag is cleared; `rolled_back=False` says the caller
    knows it has none (saves the round trips), `None` means unknown. ``drop_alias`` (e.g.
    `challenger`) is removed from the registered model once the version is champion.
    """
    old = alias_version(client, name, CHAMPION)
    if old is not None and old.version == str(version):
        return []
    record: list[dict] = []
    moves = []
    move_alias(client, name, CHAMPION, str(version), by, reason, record, evidence)
    if rolled_back is not False:
        with contextlib.suppress(MlflowException):
            client.delete_model_version_tag(name, str(version), TAG_ROLLED_BACK)
    moves.append(AliasMove(name, CHAMPION, str(version), old.version if old else None, reason))
    if old is not None:
        prev_reason = f"was champion until v{version} replaced it"
        move_alias(client, name, PREVIOUS, old.version, by, prev_reason, record)
        moves.append(AliasMove(name, PREVIOUS, old.version, None, prev_reason))
    if drop_alias:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model_alias(name, drop_alias)
    append_history(client, name, record)
    return moves


def rollback(client: MlflowClient, name: str, by: str, reason: str,
             evidence: dict[str, Any] | None = None) -> list[AliasMove]:
    """Swap champion and previous; NothingToRollBack when there is no previous to go back to."""
    require_model(client, name)
    previous = alias_version(client, name, PREVIOUS)
    if previous is None:
        raise NothingToRollBack(f"model {name!r} has no {PREVIOUS!r} alias, nothing to roll back to")
    current = alias_version(client, name, CHAMPION)
    record: list[dict] = []
    moves = [AliasMove(name, CHAMPION, previous.version, current.version if current else None, reason)]
    move_alias(client, name, CHAMPION, previous.version, by, reason, record, evidence)
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


def require_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NoSuchModel(f"no registered model named {name!r}") from exc
        raise
