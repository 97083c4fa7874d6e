"""The label-free estimator is fitted when a batch without labels first needs it, not with the profile
(monitor/reference.py, ``ProfileStore.estimator``): in process, SQLite, a stub registry, no services."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression

from monitor.db import Base, make_engine, make_session_factory
from monitor.models import StoredEstimator
from monitor.reference import ProfileStore
from monitor.registry import InputColumn, LoadedModel, ReferenceData, TrackingUnavailable
from seed_scenarios import ScenarioParams, make_batch


def _setup(tmp_path):  # noqa: ANN001, ANN202 - pytest tmp_path; (model, registry, sessions)
    reference = make_batch("clean", ScenarioParams(rows=800, seed=3))
    train, holdout = reference.iloc[:600].reset_index(drop=True), reference.iloc[600:].reset_index(drop=True)
    model = LoadedModel(name="lazy", version="1", run_id=None,
                        pyfunc=LinearRegression().fit(train[["x0", "x1"]], train["y"]),
                        inputs=[InputColumn("x0", "double"), InputColumn("x1", "double")],
                        target="y", features=["x0", "x1"])
    calls = []

    def mlflow_reference(_model):  # noqa: ANN001, ANN202
        calls.append(1)
        if registry.down:
            raise TrackingUnavailable("tracking server down")
        return ReferenceData(train, holdout, "artifact", "test")

    registry = SimpleNamespace(mlflow_reference=mlflow_reference, down=False, calls=calls)
    engine = make_engine(f"sqlite:///{tmp_path}/monitor.db")
    Base.metadata.create_all(engine)
    return model, registry, make_session_factory(engine), engine


def _stored(sessions) -> int:  # noqa: ANN001
    with sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(StoredEstimator)))


def test_a_cold_profile_fits_no_estimator_until_a_batch_without_labels_needs_one(tmp_path):
    model, registry, sessions, engine = _setup(tmp_path)
    store = ProfileStore(registry, sessions)
    choice = store.resolve(model, {}, 0)
    assert choice.profile is not None and _stored(sessions) == 0  # the profile alone
    # A labelled batch: no estimator yet, none fitted, the reference not read again.
    reads = len(registry.calls)
    assert store.estimator(model, choice.key, choice.profile, fit=False) is None
    assert _stored(sessions) == 0 and len(registry.calls) == reads

    # A batch without labels while the tracking server is down: no estimate, nothing stored, retried.
    registry.down = True
    assert store.estimator(model, choice.key, choice.profile, fit=True) is None
    assert _stored(sessions) == 0
    registry.down = False
    fitted = store.estimator(model, choice.key, choice.profile, fit=True)
    assert fitted is not None and _stored(sessions) == 1
    assert store.estimator(model, choice.key, choice.profile, fit=False) is fitted  # memory from now on

    # Another process (a replica, or after a restart): the stored one, never a second fit.
    other = ProfileStore(registry, sessions)
    again = other.resolve(model, {}, 0)
    reads = len(registry.calls)
    loaded = other.estimator(model, again.key, again.profile, fit=False)
    assert loaded is not None and len(registry.calls) == reads and _stored(sessions) == 1
    batch = make_batch("data_drift", ScenarioParams(rows=200, seed=5)).drop(columns=["y"])
    predictions = model.predict(batch)
    assert loaded.estimate(batch, predictions) == fitted.estimate(batch, predictions)
    engine.dispose()


def test_the_estimator_is_the_one_the_profile_used_to_carry(tmp_path):
    """Fitted apart, on the same reference rows, predictions and labels, with the same seed."""
    from monitor.estimation import fit_regression_estimator

    model, registry, sessions, engine = _setup(tmp_path)
    store = ProfileStore(registry, sessions)
    choice = store.resolve(model, {}, 0)
    lazy = store.estimator(model, choice.key, choice.profile, fit=True)
    rows = pd.concat([registry.mlflow_reference(model).train, registry.mlflow_reference(model).holdout],
                     ignore_index=True)
    eager = fit_regression_estimator(rows[["x0", "x1"]], ["x0", "x1"], model.predict(rows), rows["y"])
    batch = make_batch("data_drift", ScenarioParams(rows=200, seed=5)).drop(columns=["y"])
    assert lazy.estimate(batch, model.predict(batch)) == eager.estimate(batch, model.predict(batch))
    engine.dispose()


def test_an_estimator_is_fitted_from_the_reference_window_its_profile_came_from(tmp_path):
    """No MLflow reference: the profile is the window's, and so are the estimator's rows (its key)."""
    import io

    from monitor.estimation import fit_regression_estimator
    from monitor.models import ReferenceWindowRows

    model, registry, sessions, engine = _setup(tmp_path)
    registry.mlflow_reference = lambda _model: None
    window = make_batch("clean", ScenarioParams(rows=300, seed=9))
    with sessions.begin() as session:
        for part in (window.iloc[:150], window.iloc[150:]):
            buffer = io.BytesIO()
            part.to_parquet(buffer, index=False)
            session.add(ReferenceWindowRows(model_name="lazy", model_version="1", data=buffer.getvalue(),
                                            n_rows=len(part)))
    store = ProfileStore(registry, sessions)
    choice = store.resolve(model, {}, 300)
    assert choice.kind == "window" and choice.key.endswith(":window300")
    lazy = store.estimator(model, choice.key, choice.profile, fit=True)
    eager = fit_regression_estimator(window[["x0", "x1"]], ["x0", "x1"], model.predict(window), window["y"])
    batch = make_batch("data_drift", ScenarioParams(rows=100, seed=5)).drop(columns=["y"])
    assert lazy.estimate(batch, model.predict(batch)) == eager.estimate(batch, model.predict(batch))
    engine.dispose()


def test_a_labelled_batch_looks_for_another_process_s_estimator_every_few_seconds_not_every_push(
        tmp_path, monkeypatch):
    from monitor import estimators, reference

    monkeypatch.setattr(reference, "NONE_STORED_SECONDS", 3600.0)  # the fit below may take seconds
    reads = []
    load = estimators.load_estimator
    monkeypatch.setattr(estimators, "load_estimator", lambda *a: reads.append(1) or load(*a))
    model, registry, sessions, engine = _setup(tmp_path)
    labelled_only = ProfileStore(registry, sessions)  # a worker that only ever sees labelled pushes
    choice = labelled_only.resolve(model, {}, 0)
    assert labelled_only.estimator(model, choice.key, choice.profile, fit=False) is None
    assert len(reads) == 1
    fitter = ProfileStore(registry, sessions)  # another worker: a push without labels fits one
    fitted = fitter.estimator(model, choice.key, choice.profile, fit=True)
    assert fitted is not None and _stored(sessions) == 1
    reads.clear()
    for _ in range(3):  # the answer of a moment ago, no database read per labelled push
        assert labelled_only.estimator(model, choice.key, choice.profile, fit=False) is None
    assert reads == []
    monkeypatch.setattr(reference, "NONE_STORED_SECONDS", 0.0)  # ... until it is a few seconds old
    found = labelled_only.estimator(model, choice.key, choice.profile, fit=False)
    assert found is not None and len(reads) == 1
    batch = make_batch("data_drift", ScenarioParams(rows=200, seed=5)).drop(columns=["y"])
    assert found.estimate(batch, model.predict(batch)) == fitted.estimate(batch, model.predict(batch))
    engine.dispose()
