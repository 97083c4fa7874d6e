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


def register_copies(client: mlflow.MlflowClient, names: list[str], *, kind: str = "linear",
                    alias: str = "champion", workers: int = 1) -> None:
    """Register many models fast: one real training run and artifact upload (``register_model`` for
    the first name), then every other name gets its own registered model whose version 1 points at
    the same logged model and run (so the same reference artifacts) with the same tags and alias.
    Each name is still its own model to the monitor: resolved, loaded and profiled separately."""
    if not names:
        return
    first = names[0]
    version = register_model(client, first, kind=kind, alias=alias)
    source = client.get_model_version(first, version)

    def copy_as(name: str) -> None:
        client.create_registered_model(name)
        copy = client.create_model_version(name, source.source, run_id=source.run_id,
                                           tags={"driftline.target": TARGET,
                                                 "driftline.features": ",".join(FEATURES)},
                                           model_id=_logged_model_id(source))
        client.set_registered_model_alias(name, alias, copy.version)

    if workers <= 1:
        for name in names[1:]:
            copy_as(name)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:  # the bench's 1,000 names: minutes one at a time
        list(pool.map(copy_as, names[1:]))


def _logged_model_id(version) -> str | None:  # noqa: ANN001 - mlflow ModelVersion
    """MLflow 3 refuses a ``models:/m-…`` source unless the logged model's id comes with it."""
    found = getattr(version, "model_id", None)
    if found:
        return found
    source = str(version.source)
    return source.removeprefix("models:/").split("/")[0] if source.startswith("models:/m-") else None
