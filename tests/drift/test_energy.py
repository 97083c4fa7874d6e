"""The joint test: energy distance and mean shift, their permutation p-values and Tippett combination,
null distribution, place in reports."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import energy_distance, kstest

from monitor.drift import DriftConfig, DriftDetector, DriftReport, ReferenceProfile
from monitor.drift.stattests.energy import (
    energy_statistic,
    energy_test,
    energy_tests,
    joint_test,
    joint_tests,
)
from tests.drift.scenario_data import batch, fitted_detector, score


def reference_permutation_test(x: np.ndarray, y: np.ndarray, permutations: int, seed: int, with_mean=False):
    """Straightforward permutation test: scale by pooled std, then explicit statistics per relabelling.

    Returns (observed energy, energy p-value) or, ``with_mean``, also the observed mean shift, its
    p-value and the p-value of min(energy p, mean p) over the observed split and every relabelling.
    """
    pooled = np.concatenate([x, y])
    pooled = pooled / pooled.std(axis=0)
    n, m = len(x), len(y)

    def statistic(a: np.ndarray, b: np.ndarray) -> float:
        between = np.mean([np.linalg.norm(u - v) for u in a for v in b])
        within_a = np.mean([np.linalg.norm(u - v) for u in a for v in a])
        within_b = np.mean([np.linalg.norm(u - v) for u in b for v in b])
        return 2 * between - within_a - within_b

    def mean_shift(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sum((b.mean(axis=0) - a.mean(axis=0)) ** 2))

    # relabelling b: the first m entries of row b of one seeded rng.permuted call (energy.batch_rows)
    orders = np.random.default_rng(seed).permuted(np.tile(np.arange(n + m), (permutations, 1)), axis=1)
    splits = [np.arange(n + m) >= n]  # the observed split first
    for order in orders:
        in_batch = np.zeros(n + m, dtype=bool)
        in_batch[order[:m]] = True
        splits.append(in_batch)
    energies = np.array([statistic(pooled[~s], pooled[s]) for s in splits])
    shifts = np.array([mean_shift(pooled[~s], pooled[s]) for s in splits])

    def p_of(values: np.ndarray, i: int) -> float:  # ties up to rounding count as ties
        return np.mean(values >= values[i] - 1e-10 * abs(values[i]) - 1e-14)

    p_energy = p_of(energies, 0)
    if not with_mean:
        return energies[0], p_energy
    q = [min(p_of(energies, i), p_of(shifts, i)) for i in range(len(splits))]
    return energies[0], p_energy, shifts[0], p_of(shifts, 0), np.mean(np.array(q) <= q[0])


def test_statistic_equals_scipy_energy_distance_squared_in_one_dimension():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=37), rng.normal(0.4, 1.3, size=23)
    assert energy_statistic(x[:, None], y[:, None]) == pytest.approx(energy_distance(x, y) ** 2, abs=1e-12)


@pytest.mark.parametrize(("n", "m", "d"), [(12, 7, 3), (9, 9, 2), (15, 4, 1)])
def test_permutation_p_value_equals_a_direct_permutation_loop(n, m, d):
    rng = np.random.default_rng([n, m, d])
    x, y = rng.normal(size=(n, d)), rng.normal(0.5, 1.0, size=(m, d))
    expected_statistic, expected_p = reference_permutation_test(x, y, permutations=200, seed=11)
    statistic, p_value = energy_test(x, y, permutations=200, seed=11)
    assert p_value == expected_p
    assert statistic == pytest.approx(expected_statistic, abs=1e-9)


@pytest.mark.parametrize(("n", "m", "d"), [(12, 7, 3), (15, 4, 1)])
def test_combined_p_value_equals_a_direct_permutation_loop(n, m, d):
    rng = np.random.default_rng([n, m, d, 1])
    x, y = rng.normal(size=(n, d)), rng.normal(0.5, 1.0, size=(m, d))
    energy, p_energy, shift, p_mean, p_value = reference_permutation_test(x, y, 200, 11, with_mean=True)
    outcome = joint_test(x, y, permutations=200, seed=11)
    assert (outcome.p_energy, outcome.p_mean, outcome.p_value) == (p_energy, p_mean, p_value)
    assert outcome.energy == pytest.approx(energy, abs=1e-9)
    assert outcome.mean_shift == pytest.approx(shift, abs=1e-9)
    assert outcome.p_value >= min(outcome.p_energy, outcome.p_mean)  # the combination pays for the choice


def test_mean_shift_equals_the_squared_distance_of_standardised_means():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(30, 3)) * [1, 5, 20], rng.normal(1, 1, size=(9, 3)) * [1, 5, 20]
    scale = np.concatenate([x, y]).std(axis=0)
    expected = np.sum(((y.mean(axis=0) - x.mean(axis=0)) / scale) ** 2)
    assert joint_test(x, y, permutations=9).mean_shift == pytest.approx(expected, rel=1e-12)


def test_combined_p_values_are_uniform_without_drift():
    rng = np.random.default_rng(2025)
    references = rng.uniform(0, 100, size=(2000, 80, 2))
    currents = rng.uniform(0, 100, size=(2000, 20, 2))
    p_values = joint_tests(references, currents, permutations=199, seed=0).p_value
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert np.mean(p_values <= 0.05) == pytest.approx(0.05, abs=0.015)


def test_p_values_are_uniform_without_drift():
    rng = np.random.default_rng(2024)
    references = rng.normal(size=(2000, 30, 2))
    currents = rng.normal(size=(2000, 10, 2))
    _, p_values = energy_tests(references, currents, permutations=199, seed=0)
    assert kstest(p_values, "uniform").pvalue > 0.01
    assert np.mean(p_values <= 0.05) == pytest.approx(0.05, abs=0.015)


def test_batched_tests_equal_one_at_a_time():
    rng = np.random.default_rng(5)
    references, currents = rng.normal(size=(4, 20, 3)), rng.normal(0.3, 1, size=(4, 6, 3))
    statistics, p_values = energy_tests(references, currents, permutations=50, seed=2)
    for i in range(4):
        statistic, p_value = energy_test(references[i], currents[i], 50, 2)
        assert p_values[i] == p_value and statistics[i] == pytest.approx(statistic, rel=1e-12)


def test_seed_drift_on_twenty_rows_is_found_by_the_joint_test_and_named_by_feature():
    report = score(fitted_detector(), batch("data_drift", 20, seed=7))
    joint = report.joint["energy_mean"]
    assert report.data_drift and joint.counts
    assert "inputs:energy_mean" in report.verdicts["data_drift"].drivers
    assert "inputs" not in report.drifted_features
    assert report.settings["joint_test"] == "energy_mean"
    assert "mean shift" in joint.note


def test_the_energy_only_joint_test_is_still_offered():
    report = score(fitted_detector(config=DriftConfig(joint_test="energy")), batch("data_drift", 20, seed=7))
    assert list(report.joint) == ["energy"] and "inputs:energy" in report.verdicts["data_drift"].drivers


def test_feature_adjusted_p_values_are_closed_testing_max_of_joint_and_holm():
    report = score(fitted_detector(), batch("data_drift", 20, seed=3))
    joint = report.joint["energy_mean"]
    ks = sorted((report.features[f]["ks"] for f in ("x0", "x1")), key=lambda r: r.p_value)
    scale = report.settings["family_size"] / 2  # two data tests in a family of four
    holm = [ks[0].p_value * 2, max(ks[0].p_value * 2, ks[1].p_value)]
    for result, holm_p in zip(ks, holm, strict=True):
        assert result.adjusted_p_value == pytest.approx(min(1.0, max(joint.p_value, holm_p) * scale))
    assert joint.adjusted_p_value == pytest.approx(min(1.0, joint.p_value * scale))


def test_clean_batch_keeps_the_joint_test_quiet():
    report = score(fitted_detector(), batch("clean", 20, seed=7))
    assert not report.data_drift and report.joint["energy_mean"].p_value > 0.05


def test_large_batches_keep_the_per_feature_ks_path():
    report = score(fitted_detector(), batch("data_drift", 1000, seed=7))
    assert report.joint == {} and report.settings["joint_test"] is None
    assert report.data_drift and report.drifted_features == ["x0", "x1"]


@pytest.mark.parametrize(
    "config",
    [DriftConfig(joint_test="none"), DriftConfig(correction="bh"), DriftConfig(alpha_split="none")],
)
def test_configurations_without_closed_testing_run_no_joint_test(config):
    report = score(fitted_detector(config=config), batch("data_drift", 20, seed=7))
    assert report.joint == {}


def test_a_categorical_data_test_keeps_the_per_feature_path():
    reference = batch("clean", 80, seed=1).assign(colour=["red", "blue"] * 40)
    current = batch("data_drift", 20, seed=2).assign(colour=["red", "blue"] * 10)
    detector = DriftDetector().fit(reference[["x0", "x1", "colour"]])
    assert detector.profile_.joint.columns == ["x0", "x1"]
    report = detector.score(current[["x0", "x1", "colour"]])
    assert report.joint == {}  # the joint test of x0, x1 cannot stand in for the chi-square of colour


def test_profile_round_trips_keep_the_joint_rows_and_old_profiles_still_score():
    detector = fitted_detector()
    rows = detector.profile_.joint.values
    assert rows.shape == (80, 2)
    for profile in (
        ReferenceProfile.from_bytes(detector.profile_.to_bytes()),
        ReferenceProfile.from_dict(detector.profile_.to_dict()),
    ):
        assert profile.joint.columns == ["x0", "x1"] and np.array_equal(profile.joint.values, rows)
    old = detector.profile_.to_dict()
    del old["joint"]
    report = score(DriftDetector.from_profile(ReferenceProfile.from_dict(old)), batch("data_drift", 20, 7))
    assert report.joint == {} and report.settings["joint_test"] is None


def test_report_round_trip_keeps_the_joint_result():
    report = score(fitted_detector(), batch("data_drift", 20, seed=7))
    assert DriftReport.from_dict(report.to_dict()) == report
    legacy = report.to_dict()
    del legacy["joint"]
    assert DriftReport.from_dict(legacy).joint == {}


def test_rows_with_missing_values_are_left_out_of_the_joint_test_only():
    current = batch("data_drift", 20, seed=7)
    current.loc[:4, "x1"] = np.nan
    detector = fitted_detector()
    report = score(detector, current)
    complete = current[["x0", "x1"]].dropna().to_numpy()
    expected = joint_test(detector.profile_.joint.values, complete, permutations=999, seed=0)
    assert report.joint["energy_mean"].p_value == expected.p_value
    assert report.joint["energy_mean"].statistic == pytest.approx(expected.energy, rel=1e-12)
    assert report.sample_sizes["current"] == 20 and report.features["x0"]["ks"].p_value is not None


def test_a_reference_too_large_for_the_joint_test_stores_no_rows():
    reference = pd.DataFrame(np.random.default_rng(0).normal(size=(2000, 3)), columns=["a", "b", "c"])
    assert DriftDetector().fit(reference).profile_.joint is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"joint_test": "mmd"}, "unknown joint_test"),
        ({"permutations": 0}, "permutations must be at least 1"),
        ({"joint_max_rows": -1}, "joint_max_rows"),
    ],
)
def test_bad_joint_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DriftConfig(**kwargs)
