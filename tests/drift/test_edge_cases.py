"""Edge cases give a defined result or a ValueError that says what is wrong and what to do."""

import json

import numpy as np
import pandas as pd
import pytest

from monitor.drift import DriftConfig, DriftDetector


@pytest.fixture
def reference():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "num": rng.normal(size=200),
            "cat": rng.choice(["a", "b", "c"], size=200),
            "const": np.full(200, 3.0),
        }
    )


@pytest.fixture
def detector(reference):
    return DriftDetector().fit(reference)


def test_an_empty_batch_is_refused(detector, reference):
    with pytest.raises(ValueError, match="no rows; pass at least one row"):
        detector.score(reference.iloc[:0])


def test_a_single_row_is_scored(detector, reference):
    report = detector.score(reference.iloc[:1])
    assert report.sample_sizes["current"] == 1
    assert report.features["num"]["ks"].p_value is not None


def test_a_constant_column_that_stays_constant_does_not_drift(detector, reference):
    report = detector.score(reference.iloc[:50])
    assert report.features["const"]["ks"].statistic == 0.0
    assert "const" not in report.drifted_features


def test_a_constant_column_that_moves_drifts(detector, reference):
    batch = reference.iloc[:50].assign(const=4.0)
    report = detector.score(batch)
    assert report.features["const"]["ks"].statistic == 1.0
    assert "const" in report.drifted_features
    assert report.features["const"]["wasserstein"].statistic == 1.0  # constant reference: column units


def test_an_all_nan_column_fails_quality_and_is_not_reported_as_no_drift(detector, reference):
    report = detector.score(reference.iloc[:50].assign(num=np.nan))
    assert report.quality_failed
    assert "num" in report.quality["failed_features"]
    assert "no_finite_values" in report.quality["columns"]["num"]["issues"]
    assert report.features["num"]["ks"].drift is None
    assert report.features["num"]["ks"].note
    assert report.alert


def test_an_all_none_object_column_counts_as_all_missing(detector, reference):
    report = detector.score(reference.iloc[:50].assign(num=pd.Series([None] * 50, dtype=object)))
    assert report.quality["columns"]["num"]["issues"] == ["no_values"]
    assert report.features["num"]["ks"].drift is None


def test_infinite_values_never_crash_and_are_flagged(detector, reference):
    batch = reference.iloc[:50].copy()
    batch.loc[:4, "num"] = np.inf
    report = detector.score(batch)
    assert "infinite_values" in report.quality["columns"]["num"]["issues"]
    assert report.features["num"]["ks"].p_value is not None
    json.dumps(report.to_dict(), allow_nan=False)


def test_a_rising_missing_share_is_a_quality_failure(detector, reference):
    batch = reference.iloc[:50].copy()
    batch.loc[:20, "num"] = np.nan
    report = detector.score(batch)
    assert report.quality["columns"]["num"]["missing_share"] == pytest.approx(21 / 50)
    assert "missing_share" in report.quality["columns"]["num"]["issues"]


def test_a_column_missing_from_the_batch_is_refused_by_name(detector, reference):
    with pytest.raises(ValueError, match="lacks column\\(s\\) 'cat'.*send every profiled column"):
        detector.score(reference.drop(columns=["cat"]))


def test_extra_batch_columns_are_listed_and_ignored(detector, reference):
    report = detector.score(reference.assign(extra=1.0))
    assert report.quality["unexpected_columns"] == ["extra"]
    assert "extra" not in report.features


def test_a_numeric_column_sent_as_text_is_refused_with_the_fix(detector, reference):
    with pytest.raises(ValueError, match="numeric in the reference .* but categorical in the batch.*cast"):
        detector.score(reference.assign(num=reference["num"].astype(str)))


def test_integers_where_the_reference_had_floats_are_fine(detector, reference):
    report = detector.score(reference.assign(num=np.round(reference["num"] * 10).astype(int)))
    assert report.features["num"]["ks"].p_value is not None


def test_new_categories_are_reported_and_flagged(detector, reference):
    batch = reference.iloc[:40].copy()
    batch.loc[:9, "cat"] = "zzz"
    report = detector.score(batch)
    column = report.quality["columns"]["cat"]
    assert column["new_categories"] == ["zzz"]
    assert column["new_category_share"] == pytest.approx(10 / 40)
    assert "new_categories" in column["issues"]
    assert report.features["cat"]["chi2"].p_value < 0.05


def test_an_all_nan_reference_column_is_refused_at_fit():
    with pytest.raises(ValueError, match="'x' has no finite values in the reference.*drop it"):
        DriftDetector().fit(pd.DataFrame({"x": [np.nan, np.nan], "y": [1.0, 2.0]}))


def test_an_empty_reference_is_refused():
    with pytest.raises(ValueError, match="reference has no rows"):
        DriftDetector().fit(pd.DataFrame({"x": []}))


def test_scoring_before_fit_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="not fitted; call fit"):
        DriftDetector().score(pd.DataFrame({"x": [1.0]}))


def test_labels_without_predictions_are_refused(reference):
    with pytest.raises(ValueError, match="labels were given without predictions"):
        DriftDetector().fit(reference, labels=np.zeros(200))


def test_predictions_of_the_wrong_length_are_refused(reference):
    with pytest.raises(ValueError, match="predictions have 3 values but the reference has 200 rows"):
        DriftDetector().fit(reference, predictions=[1.0, 2.0, 3.0])


def test_labels_on_a_profile_without_baseline_residuals_are_refused(reference):
    detector = DriftDetector().fit(reference, predictions=reference["num"])
    with pytest.raises(ValueError, match="no baseline residuals; fit the detector with predictions and lab"):
        detector.score(reference, predictions=reference["num"], labels=reference["num"])


def test_missing_labels_are_skipped_not_counted_as_errors(reference):
    preds, labels = reference["num"], reference["num"] + 0.1
    detector = DriftDetector().fit(reference, predictions=preds, labels=labels)
    batch_labels = labels.copy()
    batch_labels.iloc[:100] = np.nan
    report = detector.score(reference, predictions=preds, labels=batch_labels)
    assert report.performance["rows_with_label"] == 100
    assert report.performance["mse"] == pytest.approx(0.01)


def test_all_missing_labels_fail_quality_instead_of_passing(reference):
    preds = reference["num"]
    detector = DriftDetector().fit(reference, predictions=preds, labels=preds + 1)
    report = detector.score(reference, predictions=preds, labels=np.full(200, np.nan))
    assert report.quality_failed
    assert "model:no_valid_residuals" in report.verdicts["data_quality"].drivers
    assert report.concept["ks"].drift is None


def test_unknown_test_names_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown drift test 'kss'; choose one of ks"):
        DriftConfig(numeric_tests=("kss",))


def test_a_categorical_test_on_numeric_columns_is_refused():
    with pytest.raises(ValueError, match="does not apply to numeric columns"):
        DriftConfig(numeric_tests=("chi2",))


def test_non_string_column_names_are_profiled_as_strings_and_still_found():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(50, 2)))  # columns 0 and 1
    report = DriftDetector().fit(frame).score(frame)
    assert list(report.features) == ["0", "1"]
