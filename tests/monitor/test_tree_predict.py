"""The vectorised tree prediction equals scikit-learn's bit for bit (monitor/tree_predict.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from monitor import tree_predict
from monitor.estimation import fit_regression_estimator
from monitor.tree_predict import FastRegressor, fast, predict_together, speed_up


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


@pytest.mark.parametrize("max_cells", [FastRegressor.MAX_CELLS, 0])  # fused tables, then model by model
def test_predicting_the_loss_models_together_is_identical(monkeypatch, max_cells):
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x0": rng.uniform(0, 100, 800), "x1": rng.uniform(0, 100, 800)})
    labels = reference["x0"] + rng.normal(0, 1 + reference["x1"] / 20)
    estimator = fit_regression_estimator(reference, ["x0", "x1"], reference["x0"].to_numpy(), labels)
    plain = [m for loss in estimator.losses.values() for m in [*loss.folds, loss.scatter]]
    monkeypatch.setattr(FastRegressor, "MAX_CELLS", max_cells)
    quick = [fast(m) for m in plain]
    assert all((m.table is not None) == (max_cells > 0) for m in quick)
    assert (tree_predict._together_for(quick) is not None) == (max_cells > 0)  # the fused pass is tested
    rows_per_block = max(2, tree_predict.BLOCK_ROWS * 150 // sum(len(m.roots) for m in quick))
    for n in (1, 2, 7, 100, rows_per_block + 1, rows_per_block + 2, 3000):  # +1: a last one-row block
        batch = pd.DataFrame({"x0": rng.uniform(-50, 150, n), "x1": rng.uniform(0, 100, n)})
        batch.loc[batch.index[: n // 4], "x1"] = np.nan
        design = estimator.design(batch, batch["x0"].to_numpy())
        want = np.array([m.predict(design) for m in plain])
        assert np.array_equal(predict_together(quick, design), want), n
        assert np.array_equal(predict_together(plain, design), want), n  # not sped up: each its own
