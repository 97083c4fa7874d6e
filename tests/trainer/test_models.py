"""Exercise 2's custom model and the candidate list, without a server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer.candidates import ConfigError, custom_model, lasso_grid, load_config, parse_alphas
from trainer.first_feature_model import FirstFeatureModel


def test_custom_model_predicts_one_value_per_row_of_any_frame():
    frame = pd.DataFrame({"x0": [1.0, 2.0, 3.0], "x1": [9.0, 9.0, 9.0]})
    np.testing.assert_allclose(FirstFeatureModel().predict(None, frame), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(FirstFeatureModel(offset=10).predict(None, frame.head(1)), [11.0])
    assert FirstFeatureModel().predict(None, frame.iloc[:0]).shape == (0,)


def test_custom_model_accepts_arrays_and_a_single_row_list():
    rows = np.array([[1.0, 5.0], [2.0, 5.0]])
    np.testing.assert_allclose(FirstFeatureModel().predict(None, rows), [1.0, 2.0])
    np.testing.assert_allclose(FirstFeatureModel().predict(None, [4.0, 5.0]), [4.0])


def test_identity_changes_with_params_data_and_kind_only():
    a, b = lasso_grid((0.5, 1.0), "m")
    split = {"split_seed": 42, "test_size": 0.2}
    assert a.identity("fp", split) == lasso_grid((0.5,), "m")[0].identity("fp", split)
    assert len({a.identity("fp", split), b.identity("fp", split), a.identity("other", split),
                custom_model(0.0, "m").identity("fp", split)}) == 4


def test_config_lists_sklearn_estimators_by_import_path(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "models:\n  - name: ridge_model\n    estimator: sklearn.linear_model.Ridge\n"
        "    params: {alpha: 1.0}\n")
    (candidate,) = load_config(tmp_path / "c.yaml")
    assert (candidate.model_name, candidate.params) == ("ridge_model", {"alpha": 1.0})
    assert candidate.build().get_params()["alpha"] == 1.0


@pytest.mark.parametrize("text", [
    "models: [{name: x}]", "models:\n  - {name: x, estimator: os.path, extra: 1}", "models: [",
    "models:\n  - {name: x, estimator: json.dumps}"])
def test_invalid_config_raises_config_error(tmp_path, text):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "c.yaml")


def test_alphas_must_be_positive_numbers():
    assert parse_alphas("0.1, 0.5") == (0.1, 0.5)
    for bad in ("", "a", "0", "-1"):
        with pytest.raises(ConfigError):
            parse_alphas(bad)
