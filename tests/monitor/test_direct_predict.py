"""A registered sklearn model predicts through its own ``predict`` when MLflow's schema check would
change nothing, with exactly MLflow's results; every other case keeps MLflow's path."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from monitor.registry import Registry
from tests.monitor.helpers import FEATURES, reference_split, register_model
from tests.monitor.team_models import register_exercise_one


def _load(tracking_server, name: str, version: str = "1"):
    return Registry(tracking_server.url).load(name, version)


def _counted(model):
    calls = []
    real = model.direct

    def direct(frame):
        calls.append(len(frame))
        return real(frame)

    model.direct = direct
    return calls


def test_an_sklearn_model_with_a_double_signature_skips_only_the_schema_check(mlflow_client, tracking_server,
                                                                             unique_name):
    name = unique_name()
    register_model(mlflow_client, name)
    model = _load(tracking_server, name)
    assert model.direct is not None and model.as_array  # fitted on x0, x1: the signature's order
    calls = _counted(model)
    frame = reference_split(300, seed=7)[0][FEATURES + ["y"]]
    got = model.predict(frame)  # the target and any other column are left out, as MLflow's path does
    assert calls == [len(frame)]
    assert np.array_equal(np.asarray(got), np.asarray(model.pyfunc.predict(frame[FEATURES])))

    # A column that is not float64 goes through MLflow's own check and conversion.
    ints = frame[FEATURES].round().astype("int32")  # MLflow upcasts these to double
    assert np.array_equal(np.asarray(model.predict(ints)), np.asarray(model.pyfunc.predict(ints)))
    assert calls == [len(frame)]


def test_a_team_model_logged_with_only_an_input_example_takes_the_direct_path(mlflow_client, tracking_server,
                                                                             unique_name):
    name = unique_name()
    version = register_exercise_one(name)
    model = _load(tracking_server, name, version)
    assert model.direct is not None
    frame = pd.DataFrame({"temp": np.linspace(0, 30, 50), "load": np.linspace(100, 0, 50)})
    assert np.array_equal(np.asarray(model.predict(frame)), np.asarray(model.pyfunc.predict(frame)))


def test_other_models_keep_mlflows_path(mlflow_client, tracking_server, unique_name):
    custom = unique_name("custom")
    register_model(mlflow_client, custom, kind="custom", offset=1.5)
    assert _load(tracking_server, custom).direct is None  # a PythonModel: its own predict, MLflow's call

    train = reference_split()[0]
    integers = train[FEATURES].round().astype("int64")  # a "long" signature: MLflow converts inputs
    fitted = LinearRegression().fit(integers, train["y"])
    labels = train["y"] > train["y"].median()
    classifier = LogisticRegression().fit(train[FEATURES], labels)  # its pyfunc answers probabilities
    for name, model, frame, extra in (
            (unique_name("long"), fitted, integers, {}),
            (unique_name("proba"), classifier, train[FEATURES], {"pyfunc_predict_fn": "predict_proba"})):
        _log(name, model, frame, labels, **extra)
        assert _load(tracking_server, name).direct is None, name


def test_an_array_goes_only_to_estimators_fitted_on_the_inputs_in_order(mlflow_client, tracking_server,
                                                                      unique_name):
    train = reference_split(200, seed=3)[0]
    labels = np.where(train["y"] > train["y"].median(), "high", "low")
    frame = reference_split(300, seed=9)[0][FEATURES]

    # A classifier fitted on x0, x1: labels and probabilities from the array, as from the frame.
    plain = unique_name("logistic")
    _log(plain, LogisticRegression().fit(train[FEATURES], labels), train[FEATURES], labels)
    model = _load(tracking_server, plain)
    assert model.task == "classification" and model.direct is not None and model.as_array
    raw = model.pyfunc.get_raw_model()
    assert np.array_equal(model.predict(frame), raw.predict(frame))
    assert np.array_equal(model.predict_proba(frame), raw.predict_proba(frame))

    # Fitted on x1, x0 (another order than the signature's): MLflow's frame, whose names sklearn checks.
    swapped = unique_name("swapped")
    fitted = LinearRegression().fit(train[FEATURES[::-1]], train["y"])
    _log(swapped, fitted, train[FEATURES], train["y"])
    assert not _load(tracking_server, swapped).as_array

    # A pipeline may select its columns by name: it gets the frame.
    piped = unique_name("pipeline")
    pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(train[FEATURES], train["y"])
    _log(piped, pipeline, train[FEATURES], train["y"])
    model = _load(tracking_server, piped)
    assert model.direct is not None and not model.as_array
    assert np.array_equal(model.predict(frame), pipeline.predict(frame))


def _log(name: str, model, frame: pd.DataFrame, labels, **extra) -> None:  # noqa: ANN001 - an estimator
    mlflow.set_experiment(f"direct-{name}")
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                 signature=infer_signature(frame, np.asarray(labels)), **extra)
