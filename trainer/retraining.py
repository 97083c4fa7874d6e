"""`retrain`: fit the champion's kind again on recent labelled batches (plus, optionally, its reference),
register the result with lineage, and give it the `challenger` alias, never `champion`: it must win the
monitor's paired test on fresh batches before it is promoted (docs/promotion.md).

Which model: the champion's recorded kind and parameters (`driftline.model_kind`, `driftline.params`,
written by `train`). A scikit-learn kind is refitted with the same parameters; exercise 2's custom model
f(x) = x0 + offset gets its one parameter, the offset, refitted as the mean of y - x0 (the least-squares
offset). A version the trainer did not register carries no kind: it cannot be retrained here (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from model_registry.aliases import CHALLENGER, CHAMPION, alias_version
from trainer import registry
from trainer.candidates import CUSTOM_KIND, Candidate
from trainer.data import TrainingData, prepare
from trainer.errors import RegistryError, RunFailed

TAG_REQUEST = "driftline.retrain.request"
TAG_BATCHES = "driftline.retrain.batches"
TAG_FROM = "driftline.retrain.champion"
TAG_WITH_REFERENCE = "driftline.retrain.with_reference"


@dataclass
class Retrained:
    model: str
    version: str
    alias: str
    champion: str
    rows: int


def candidate_for(client: MlflowClient, name: str) -> tuple[Candidate, str, list[str], str]:
    """The champion's candidate (kind + params), its version, features and target."""
    champion = alias_version(client, name, CHAMPION)
    if champion is None:
        raise RegistryError(f"model {name!r} has no champion to retrain", "run `train` first")
    tags = champion.tags or {}
    kind = tags.get(registry.TAG_KIND)
    features = [f for f in tags.get(registry.TAG_FEATURES, "").split(",") if f]
    target = tags.get(registry.TAG_TARGET, "y")
    if not kind:
        raise RegistryError(f"{name} v{champion.version} was not registered by the trainer (no "
                            f"{registry.TAG_KIND} tag)", "retrain it with the pipeline that built it")
    try:
        params = json.loads(tags.get(registry.TAG_PARAMS, "{}"))
    except json.JSONDecodeError:
        params = {}
    candidate = Candidate(name, kind, dict(params), label=kind.rsplit(".", 1)[-1])
    return candidate, champion.version, features, target


def refit_params(candidate: Candidate, data: TrainingData) -> Candidate:
    """The custom model's offset is its one fitted parameter (least squares: the mean residual)."""
    if candidate.kind != CUSTOM_KIND:
        return candidate
    x0 = data.train[data.features[0]].to_numpy(dtype="float64")
    offset = float(np.mean(data.train[data.target].to_numpy(dtype="float64") - x0))
    return Candidate(candidate.model_name, candidate.kind, {**candidate.params, "offset": round(offset, 6)},
                     label=candidate.label)


def training_table(batches: pd.DataFrame, features: list[str], target: str,
                   reference: pd.DataFrame | None) -> pd.DataFrame:
    columns = [*features, target] if features else list(batches.columns)
    missing = [c for c in columns if c not in batches.columns]
    if missing:
        raise RegistryError(f"the batches lack columns {missing}", "send labelled batches with every feature")
    frame = batches[columns]
    if reference is not None:
        frame = pd.concat([reference[columns], frame], ignore_index=True)
    return frame


def set_challenger(client: MlflowClient, name: str, version: str, lineage: dict[str, str],
                   alias: str = CHALLENGER) -> None:
    if alias == CHAMPION:
        raise RunFailed("retrain never sets the champion alias", "use an alias such as challenger")
    for key, value in lineage.items():
        client.set_model_version_tag(name, version, key, value[:5000])
    client.set_registered_model_alias(name, alias, version)


def as_training_data(frame: pd.DataFrame, target: str, source: str, seed: int) -> TrainingData:
    return prepare(frame, target, source=source, split_seed=seed)
