"""Rebuild a registered version's reference data and baseline errors from the version alone.

Contract (written by `trainer.training`, read by the monitor):
- the version's run has artifacts `reference/train.parquet` and `reference/holdout.parquet`
  (feature columns + target column, float64);
- the run's dataset inputs (context "training" / "evaluation") have as source the artifact URI of
  those files (`mlflow-artifacts:/.../reference/train.parquet` on a proxying server);
- the version (and run) carry tags `driftline.target` and `driftline.features` (comma-separated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from trainer.data import read_parquet
from trainer.errors import RegistryError

CONTEXT_TAG = "mlflow.data.context"


@dataclass
class Reference:
    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    target: str
    run_id: str
    metrics: dict[str, float]

    def baseline_errors(self, predictions: np.ndarray) -> np.ndarray:
        """Hold-out residuals (target - prediction) for the given hold-out predictions."""
        return self.holdout[self.target].to_numpy() - np.asarray(predictions, dtype="float64").reshape(-1)


def load_reference(client: MlflowClient, name: str, version: str | int) -> Reference:
    """Train/hold-out frames, features, target, run id and logged hold-out metrics of `name` v`version`."""
    mv = client.get_model_version(name, str(version))
    target = mv.tags.get("driftline.target")
    features = [f for f in mv.tags.get("driftline.features", "").split(",") if f]
    if not mv.run_id or not target or not features:
        raise RegistryError(f"{name} v{version} carries no driftline reference tags",
                            "register it with `python -m trainer train`")
    run = client.get_run(mv.run_id)
    uris = _dataset_uris(run)
    base = run.info.artifact_uri.rstrip("/")
    train = _read(uris.get("training", f"{base}/reference/train.parquet"), client.tracking_uri)
    holdout = _read(uris.get("evaluation", f"{base}/reference/holdout.parquet"), client.tracking_uri)
    columns = [*features, target]
    return Reference(train=train[columns].astype("float64"), holdout=holdout[columns].astype("float64"),
                     features=features, target=target, run_id=mv.run_id, metrics=dict(run.data.metrics))


def _dataset_uris(run) -> dict[str, str]:  # noqa: ANN001 - mlflow Run
    uris: dict[str, str] = {}
    for dataset_input in run.inputs.dataset_inputs:
        context = next((t.value for t in dataset_input.tags if t.key == CONTEXT_TAG), None)
        try:
            uri = json.loads(dataset_input.dataset.source).get("uri")
        except (json.JSONDecodeError, AttributeError):
            uri = None
        if context and uri and context not in uris:
            uris[context] = uri
    return uris


def _read(uri: str, tracking_uri: str) -> pd.DataFrame:
    import mlflow.artifacts

    return read_parquet(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))
