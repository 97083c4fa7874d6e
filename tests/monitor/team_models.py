"""Models registered the plain MLflow way (no Driftline tags or artifacts), as a team member would."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

FEATURES = ["temp", "load"]
TARGET = "demand"


def demand_frame(rows: int, seed: int, scenario: str = "clean") -> pd.DataFrame:
    """demand = 2 temp + 0.5 load + noise; data drift moves temp, concept drift adds 20 to demand."""
    rng = np.random.default_rng(seed)
    temp = rng.uniform(0, 30, rows) + (15 if scenario == "data_drift" else 0)
    load = rng.uniform(0, 100, rows)
    demand = 2 * temp + 0.5 * load + rng.normal(0, 3, rows) + (20 if scenario == "concept_drift" else 0)
    return pd.DataFrame({"temp": temp, "load": load, TARGET: demand})


def served_url(artifact_path: str) -> str:
    """The HTTP URL the tracking server serves a run artifact at: a dataset source any client loads
    (MLflow 3.17 has no dataset source for ``mlflow-artifacts:`` URIs; ``https://`` it has)."""
    uri = mlflow.get_artifact_uri(artifact_path)
    return (mlflow.get_tracking_uri().rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts/"
            + uri.removeprefix("mlflow-artifacts:/"))


def register_exercise_one(name: str, *, log_data: bool = True, loadable: bool = True) -> str:
    """README exercise 1 on the team's own columns: a LinearRegression, its params and MSE, the model
    with an input example, and the training data as a dataset input with context "training"."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_squared_error

    train, test = demand_frame(400, 1), demand_frame(100, 2)
    mlflow.set_experiment(f"team-{name}")
    with mlflow.start_run():
        model = LinearRegression().fit(train[FEATURES], train[TARGET])
        mlflow.log_metric("mean_squared_error",
                          mean_squared_error(test[TARGET], model.predict(test[FEATURES])))
        if log_data:
            source = None
            if loadable:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "train.parquet"
                    train.to_parquet(path)
                    mlflow.log_artifact(str(path), artifact_path="data")
                source = served_url("data/train.parquet")
            dataset = mlflow.data.from_pandas(train, source=source, targets=TARGET, name=f"train-{name}")
            mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(2),
                                        registered_model_name=name)
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return version


def churn_frame(rows: int, seed: int, scenario: str = "clean") -> pd.DataFrame:
    """A binary target from a numeric and a string input.

    data_drift: tenure +25 and the plan mix changes (so the class mix moves too);
    concept_drift: the relation flips (churn on long tenure instead of short), class mix unchanged.
    """
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 60, rows) + (25 if scenario == "data_drift" else 0)
    plans = ["basic", "plus", "pro"]
    # Symmetric around the boundary (tenure 30, plan effects +1/0/-1 at 0.4/0.2/0.4): flipping the
    # relation keeps the class mix, so concept drift alone moves no label count.
    mix = [0.1, 0.2, 0.7] if scenario == "data_drift" else [0.4, 0.2, 0.4]
    plan = rng.choice(plans, rows, p=mix)
    logit = (30 - tenure) / 6 + np.where(plan == "basic", 1.0, np.where(plan == "plus", 0.0, -1.0))
    if scenario == "concept_drift":
        logit = -logit
    churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"tenure": tenure, "plan": plan, "churned": np.where(churn, "yes", "no")})


def three_class_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 3, rows)
    label = np.select([x < 1, x < 2], ["low", "mid"], "high")
    flip = rng.random(rows) < 0.1
    label = np.where(flip, rng.choice(["low", "mid", "high"], rows), label)
    return pd.DataFrame({"x": x, "size": label})


def register_classifier(name: str, frame: pd.DataFrame, target: str, numeric: list[str],
                        categorical: list[str]) -> str:
    """An sklearn Pipeline (scaler + one-hot + logistic regression) logged the plain way, with the
    training data as a loadable dataset input."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    steps = [("num", StandardScaler(), numeric)]
    if categorical:
        steps.append(("cat", OneHotEncoder(handle_unknown="ignore"), categorical))
    pipe = Pipeline([("prep", ColumnTransformer(steps)), ("clf", LogisticRegression(max_iter=1000))])
    inputs = [*numeric, *categorical]
    pipe.fit(frame[inputs], frame[target])
    mlflow.set_experiment(f"team-{name}")
    with mlflow.start_run():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.csv"
            frame.to_csv(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="data")
        dataset = mlflow.data.from_pandas(frame, source=served_url("data/train.csv"),
                                          targets=target, name=f"train-{name}")
        mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(pipe, name="model", input_example=frame[inputs].head(3),
                                        registered_model_name=name)
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return version
