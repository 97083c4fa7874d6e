"""The report carries binned reference and current distributions for the dashboard's overlay charts."""

import json

import numpy as np
import pandas as pd
import pytest

from monitor.drift import DriftConfig, DriftDetector, DriftReport
from tests.drift.scenario_data import batch, fitted_detector, score


@pytest.fixture
def frames():
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"num": rng.normal(size=500), "cat": rng.choice(["u", "v"], 500)})
    current = pd.DataFrame({"num": rng.normal(size=200), "cat": rng.choice(["u", "v"], 200)})
    current.loc[:14, "num"] = np.nan
    current.loc[15:16, "num"] = np.inf
    return reference, current


def test_counts_sum_to_the_finite_sample_sizes(frames):
    reference, current = frames
    dist = DriftDetector().fit(reference).score(current).distributions["num"]
    assert sum(dist["reference_counts"]) == 500
    assert sum(dist["current_counts"]) == 200 - 15 - 2  # missing and infinite values are left out
    assert len(dist["edges"]) == len(dist["reference_counts"]) + 1 == len(dist["current_counts"]) + 1


def test_edges_are_the_profile_psi_bins_bounded_by_the_reference_range():
    detector = fitted_detector()
    report = score(detector, batch("clean", 100, seed=4))
    profile = detector.profile_
    for name, part in [("x0", profile.features["x0"]), ("residuals", profile.residuals)]:
        expected = [part.min, *part.bin_edges.tolist(), part.max]
        assert report.distributions[name]["edges"] == expected
        assert report.distributions[name]["reference_counts"] == part.bin_counts.tolist()


def test_a_shifted_batch_moves_current_mass_to_the_upper_bins(frames):
    reference, _ = frames
    detector = DriftDetector().fit(reference)
    shifted = reference.assign(num=reference["num"] + 2.0)
    dist = detector.score(shifted).distributions["num"]
    ref, cur = np.array(dist["reference_counts"]), np.array(dist["current_counts"])
    half = len(ref) // 2
    assert cur[half:].sum() / cur.sum() > 0.9 > ref[half:].sum() / ref.sum()
    beyond = int((shifted["num"] > reference["num"].max()).sum())
    assert beyond > 0 and cur[-1] >= beyond  # values above the reference range land in the last bin


def test_model_distributions_are_present_only_with_the_model_outputs():
    frame = batch("clean", 100, seed=4)
    features = frame[["x0", "x1"]]
    reference = batch("clean", 80, seed=1000)
    full = DriftDetector().fit(reference[["x0", "x1"]], predictions=reference["x0"], labels=reference["y"])
    with_labels = full.score(features, predictions=frame["x0"], labels=frame["y"]).distributions
    without_labels = full.score(features, predictions=frame["x0"]).distributions
    without_model = full.score(features).distributions
    assert {"predictions", "residuals"} <= set(with_labels)
    assert "predictions" in without_labels and "residuals" not in without_labels
    assert set(without_model) == {"x0", "x1"}


def test_categorical_features_have_no_binned_distribution(frames):
    reference, current = frames
    assert "cat" not in DriftDetector().fit(reference).score(current).distributions


def test_bins_beyond_the_cap_are_merged_keeping_the_totals(frames):
    reference, current = frames
    dist = DriftDetector(DriftConfig(psi_bins=50)).fit(reference).score(current).distributions["num"]
    assert len(dist["reference_counts"]) == len(dist["current_counts"]) == 20
    assert len(dist["edges"]) == 21
    assert sum(dist["reference_counts"]) == 500 and sum(dist["current_counts"]) == 183


def test_distributions_survive_the_json_round_trip_and_old_reports_still_load():
    report = score(fitted_detector(), batch("concept_drift", 60, seed=2))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(data["distributions"]) == {"x0", "x1", "predictions", "residuals"}
    assert DriftReport.from_dict(data) == report
    del data["distributions"]  # stored before the report carried distributions
    assert DriftReport.from_dict(data).distributions == {}


def test_to_dict_is_json_safe_asdict_in_one_pass(frames):
    from dataclasses import asdict

    from monitor.drift.report import json_safe

    reference, current = frames
    for report in (score(fitted_detector(), batch("concept_drift", 60, seed=2)),
                   DriftDetector().fit(reference).score(current)):
        report.performance["nan_metric"] = float("nan")  # and a numpy scalar: both made plain
        report.quality["numpy_count"] = np.int64(3)
        assert report.to_dict() == json_safe(asdict(report))
        assert json.dumps(report.to_dict(), allow_nan=False) == json.dumps(json_safe(asdict(report)))
