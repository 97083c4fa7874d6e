"""The report is easy to store and show: JSON-safe dict, exact round trip, a short summary."""

import json

from monitor.drift import DriftReport
from tests.drift.scenario_data import batch, fitted_detector, score


def test_report_dict_is_strict_json():
    report = score(fitted_detector(), batch("concept_drift", 50, seed=2))
    json.dumps(report.to_dict(), allow_nan=False)


def test_report_round_trips_through_json():
    report = score(fitted_detector(), batch("data_drift", 50, seed=2))
    again = DriftReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report


def test_each_test_result_has_statistic_threshold_and_both_decisions():
    report = score(fitted_detector(), batch("data_drift", 50, seed=2))
    ks = report.features["x0"]["ks"]
    assert ks.drift and ks.adjusted_drift
    assert ks.threshold == 0.05 and ks.p_value <= ks.adjusted_p_value
    psi = report.features["x0"]["psi"]
    assert psi.p_value is None and psi.threshold == 0.2 and psi.decides is False


def test_summary_names_the_verdicts_and_their_drivers():
    text = score(fitted_detector(), batch("data_drift", 50, seed=2)).summary()
    assert "data_drift: DETECTED (inputs:energy_mean, x0:ks, x1:ks)" in text
    assert "concept_drift: ok" in text
