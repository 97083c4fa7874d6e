"""Which results decide: distances only with large samples or when configured; the correction applies."""

import numpy as np
import pandas as pd
import pytest

from monitor.drift import DriftConfig, DriftDetector


def frames(n_ref, n_cur, shift, seed=0):
    rng = np.random.default_rng(seed)
    return (
        pd.DataFrame({"a": rng.normal(size=n_ref)}),
        pd.DataFrame({"a": rng.normal(shift, 1.0, size=n_cur)}),
    )


def test_distances_are_reported_but_do_not_decide_on_small_samples():
    ref, cur = frames(80, 100, 0.0)
    report = DriftDetector().fit(ref).score(cur)
    assert report.features["a"]["wasserstein"].decides is False


def test_distances_decide_when_both_samples_are_large():
    ref, cur = frames(2000, 2000, 0.5)
    report = DriftDetector().fit(ref).score(cur)
    assert report.features["a"]["wasserstein"].decides is True
    assert "a:wasserstein" in report.verdicts["data_drift"].drivers


def test_distances_decide_always_when_configured():
    ref, cur = frames(80, 20, 0.0)
    config = DriftConfig(distances_decide="always", thresholds={"wasserstein": 0.0})
    report = DriftDetector(config).fit(ref).score(cur)
    assert report.features["a"]["wasserstein"].counts
    assert report.data_drift


def test_a_p_value_below_alpha_can_be_overruled_by_the_correction():
    ref, cur = frames(80, 40, 0.0, seed=11)
    many = pd.concat([cur.rename(columns={"a": f"c{i}"}) for i in range(10)], axis=1)
    reference = pd.concat([ref.rename(columns={"a": f"c{i}"}) for i in range(10)], axis=1)
    rng = np.random.default_rng(1)
    many["c0"] = rng.normal(0.55, 1.0, 40)  # a weak shift on one of ten columns
    raw = DriftDetector(DriftConfig(correction="none")).fit(reference).score(many)
    holm = DriftDetector().fit(reference).score(many)
    assert raw.features["c0"]["ks"].drift is True
    assert holm.features["c0"]["ks"].adjusted_p_value > raw.features["c0"]["ks"].p_value


def test_per_column_tests_override_the_defaults():
    ref, cur = frames(80, 30, 0.0)
    config = DriftConfig(column_tests={"a": ("mannwhitney",)})
    report = DriftDetector(config).fit(ref).score(cur)
    assert list(report.features["a"]) == ["mannwhitney"]


def test_a_strong_data_drift_does_not_lower_the_bar_of_the_concept_test():
    from monitor.drift.decision import correct
    from monitor.drift.report import TestResult

    def result(kind, target, p):
        return TestResult("ks", kind, target, 0.5, p, 0.05, p < 0.05)

    results = [result("data", "x0", 1e-9), result("data", "x1", 1e-9), result("concept", "residuals", 0.03)]
    holm_pooled = DriftConfig(alpha_split="none")
    correct(results, holm_pooled)
    assert results[2].adjusted_drift  # pooled Holm tests the last hypothesis at the full alpha
    correct(results, DriftConfig())
    assert results[2].adjusted_p_value == pytest.approx(0.09)  # its kind's share of alpha is 1/3: 0.03 * 3
    assert not results[2].adjusted_drift
