"""Register small models the way the trainer does: reference artifacts, version tags, champion alias."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression

from seed_scenarios import ScenarioParams, make_batch, train_test_split

FEATURES = ["x0", "x1"]
TARGET = "y"


class ShiftedIdentity(mlflow.pyfunc.PythonModel):
    """f(x) = x0 + offset: the course's custom model."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - MLflow's signature
        return (model_input["x0"].astype(float) + self.offset).to_numpy()


def reference_split(rows: int = 100, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed's reference: 100 clean rows split 80/20 (train is the 80-row reference)."""
    return train_test_split(make_batch("clean", ScenarioParams(rows=rows, seed=seed)), 0.2, seed)


def register_model(client: mlflow.MlflowClient, name: str, *, kind: str = "linear", offset: float = 0.0,
                   alias: str | None = "champion", rows: int = 100, seed: int = 42) -> str:
    """Train, log reference data and tags, register a version of ``name``; returns the version."""
    train, holdout = reference_split(rows, seed)
    signature = infer_signature(train[FEATURES], train[TARGET].to_numpy())
    mlflow.set_experiment(f"monitor-tests-{name}")
    with mlflow.start_run():
        with tempfile.TemporaryDirectory() as tmp:
            for frame, file in ((train, "train.parquet"), (holdout, "holdout.parquet")):
                path = Path(tmp) / file
                frame.to_parquet(path)
                mlflow.log_artifact(str(path), artifact_path="reference")
        if kind == "linear":
            model = LinearRegression().fit(train[FEATURES], train[TARGET])
            info = mlflow.sklearn.log_model(model, name="model", signature=signature,
                                            registered_model_name=name)
        else:
            info = mlflow.pyfunc.log_model(name="model", python_model=ShiftedIdentity(offset),
                                           signature=signature, registered_model_name=name)
    version = str(info.registered_model_version)
    client.set_model_version_tag(name, version, "driftline.target", TARGET)
    client.set_model_version_tag(name, version, "driftline.features", ",".join(FEATURES))
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return version
