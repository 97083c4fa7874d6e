"""The vectorised tree prediction equals scikit-learn's bit for bit (monitor/tree_predict.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from monitor.estimation import fit_regression_estimator
from monitor.tree_predict import FastRegressor, fast, speed_up


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):  # OpenMP threads crawl on a loaded 2-core machine
        yield


def _frame(rng: np.random.Generator, n: int, categories: bool) -> pd.DataFrame:
    frame = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.uniform(-5, 5, n), "c": rng.integers(0, 4, n)})
    frame.loc[rng.random(n) < 0.1, "a"] = np.nan  # missing values take each node's learned side
    if categories:
        frame["k"] = pd.Categorical(rng.choice(["x", "y", "z", "w"], n), categories=["x", "y", "z", "w"])
    return frame


@pytest.mark.parametrize("max_cells", [FastRegressor.MAX_CELLS, 0])  # the table, then the walk
def test_numeric_and_categorical_predictions_are_identical(monkeypatch, max_cells):
    monkeypatch.setattr(FastRegressor, "MAX_CELLS", max_cells)
    rng = np.random.default_rng(3)
    for categories in (False, True):
        train = _frame(rng, 600, categories)
        target = np.nan_to_num(train["a"].to_numpy()) * 2 + train["b"] ** 2 + rng.normal(0, 1, 600)
        if categories:
            target = target + (train["k"] == "y") * 3.0
        for loss in ("squared_error", "absolute_error"):
            model = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=15, min_samples_leaf=10,
                                                  loss=loss, categorical_features="from_dtype",
                                                  random_state=0).fit(train, target)
            wrapped = fast(model)
            assert isinstance(wrapped, FastRegressor)
            assert (wrapped.table is not None) == (max_cells > 0 and not categories)
            for n in (1, 7, 100, 5000):  # 5,000: more than one block of rows
                batch = _frame(rng, n, categories)
                batch.loc[batch.index[: max(1, n // 20)], "b"] = 1e9  # far outside the fit's range
                if categories:
                    unseen = ["x", "y", "new"]
                    batch["k"] = pd.Categorical(rng.choice(unseen, n), categories=unseen)
                assert np.array_equal(wrapped.predict(batch), model.predict(batch))
                array = batch.to_numpy(dtype=np.float64) if not categories else None
                if array is not None and wrapped.takes_array(array):  # several models, one conversion
                    assert np.array_equal(wrapped.predict(array), model.predict(batch))


def test_estimator_figures_unchanged_and_pickled_as_plain_models():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x0": rng.uniform(0, 100, 800), "x1": rng.uniform(0, 100, 800)})
    labels = reference["x0"] + rng.normal(0, 1 + reference["x1"] / 20)
    predictions = reference["x0"].to_numpy()
    plain = fit_regression_estimator(reference, ["x0", "x1"], predictions, labels)
    quick = pickle.loads(pickle.dumps(plain))
    speed_up(quick)
    assert all(isinstance(f, FastRegressor) for m in quick.losses.values() for f in [*m.folds, m.scatter])
    batch = pd.DataFrame({"x0": rng.uniform(20, 120, 100), "x1": rng.uniform(0, 100, 100)})
    assert quick.estimate(batch, batch["x0"].to_numpy()) == plain.estimate(batch, batch["x0"].to_numpy())
    again = pickle.loads(pickle.dumps(quick))  # what monitor/estimators.py would store
    assert all(isinstance(f, HistGradientBoostingRegressor)
               for m in again.losses.values() for f in [*m.folds, m.scatter])
