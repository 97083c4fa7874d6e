"""Seed scenarios (reference 80 rows, identity model): each kind of drift is found and attributed."""

import pytest

from tests.drift.scenario_data import batch, fitted_detector, score

SIZES = [20, 100, 1000]


@pytest.mark.parametrize("rows", SIZES)
def test_clean_batches_raise_no_drift(rows):
    report = score(fitted_detector(), batch("clean", rows, seed=7))
    assert not (report.data_drift or report.concept_drift or report.prediction_drift)
    assert report.drifted_features == []
    assert not report.quality_failed


@pytest.mark.parametrize("rows", [100, 1000])
def test_data_drift_is_found_on_both_features_and_not_called_concept_drift(rows):
    report = score(fitted_detector(), batch("data_drift", rows, seed=7))
    assert report.data_drift
    assert report.drifted_features == ["x0", "x1"]
    assert not report.concept_drift


def test_data_drift_is_found_on_twenty_rows_even_when_one_feature_is_too_weak_alone():
    # 20 rows against 80: each feature's corrected KS has ~85 % power (bench/drift_quality.py)
    report = score(fitted_detector(), batch("data_drift", 20, seed=7))
    assert report.data_drift
    assert "x0" in report.drifted_features
    assert not report.concept_drift


@pytest.mark.parametrize("rows", SIZES)
def test_data_drift_moves_the_predictions_of_the_identity_model(rows):
    report = score(fitted_detector(), batch("data_drift", rows, seed=7))
    assert report.prediction_drift
    assert report.verdicts["prediction_drift"].drivers == ["predictions:ks"]


@pytest.mark.parametrize("rows", SIZES)
def test_concept_drift_is_found_on_the_residuals_and_not_called_data_drift(rows):
    report = score(fitted_detector(), batch("concept_drift", rows, seed=7))
    assert report.concept_drift
    assert "residuals:ks" in report.verdicts["concept_drift"].drivers
    assert not report.data_drift
    assert report.drifted_features == []


def test_concept_drift_degrades_the_error_against_the_baseline():
    report = score(fitted_detector(), batch("concept_drift", 1000, seed=7))
    assert report.performance["mse_ratio"] > 3
    assert report.performance["mse"] > report.performance["baseline_mse"]
    assert report.concept["mse_ratio"].drift


def test_the_error_ratio_decides_only_with_large_samples():
    report = score(fitted_detector(), batch("concept_drift", 1000, seed=7))
    assert report.concept["mse_ratio"].decides is False  # the reference has 80 rows
    assert "mse:mse_ratio" not in report.verdicts["concept_drift"].drivers


def test_every_p_value_test_of_the_batch_is_in_one_corrected_family():
    report = score(fitted_detector(), batch("clean", 100, seed=7))
    assert report.settings["correction"] == "holm"
    assert report.settings["family_size"] == 4  # KS on x0 and x1, residuals, predictions
    ks = report.features["x0"]["ks"]
    assert ks.adjusted_p_value >= ks.p_value
