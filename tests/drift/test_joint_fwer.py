"""Family-wise false alarms over 2,000 clean batches with the joint test, and attribution at 20 rows.

Scoring 2,000 batches through ``DriftDetector.score`` per configuration would take minutes, so the
simulation computes the same p-values vectorised (KS statistics of all batches at once, p-values from
the engine's own ``ks_pvalue``, the engine's ``joint_tests`` over all batches at once) and decides
with the engine's own ``decision.correct`` and ``TestResult.counts``.
``test_simulated_decisions_equal_the_detectors`` checks on real reports that this is what the
detector does. The joint test uses 99 relabellings here (its
p-value is valid for any number; test_energy.py checks uniformity with more), on one BLAS thread:
small matrix products only contend for the cores with more.
"""

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from monitor.drift import DriftConfig, DriftDetector
from monitor.drift.decision import correct, joint_applies
from monitor.drift.report import TestResult
from monitor.drift.stattests.energy import joint_tests
from monitor.drift.stattests.ks import ks_pvalue

REFERENCE_ROWS = 80
BATCHES = 2000
# 5 % plus 2.5 binomial standard errors at 2,000 batches (seeded, so the figures are fixed)
FWER_LIMIT = 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / BATCHES)
CONFIG = DriftConfig(permutations=99)
LAYOUTS = ("seed", "correlated", "five features")


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


def draw(layout: str, batches: int, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(batches, rows, features) inputs without drift and targets y = x0 + N(0, 5)."""
    if layout == "correlated":  # correlation 0.99
        x0 = rng.uniform(0, 100, (batches, rows))
        x = np.stack([x0, x0 + rng.uniform(-5, 5, (batches, rows))], axis=2)
    else:
        x = rng.uniform(0, 100, (batches, rows, 5 if layout == "five features" else 2))
    return x, x[:, :, 0] + rng.normal(0, 5, (batches, rows))


def ks_pvalues(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Two-sample KS p-values row by row (continuous data: no ties), via the engine's ks_pvalue."""
    n, m = reference.shape[1], current.shape[1]
    pooled = np.concatenate([reference, current], axis=1)
    is_ref = np.take_along_axis(
        np.concatenate([np.ones_like(reference), np.zeros_like(current)], axis=1),
        np.argsort(pooled, axis=1),
        axis=1,
    )
    a = np.cumsum(is_ref, axis=1)  # reference values <= each pooled point
    b = np.arange(1, n + m + 1) - a  # batch values <= it
    gaps = np.abs(a * m - b * n).max(axis=1).astype(np.int64)  # n m times the largest ECDF gap
    lookup = {g: ks_pvalue(g / (n * m), n, m)[1] for g in np.unique(gaps)}
    return np.array([lookup[g] for g in gaps])


def family_alarms(x_ref, y_ref, x_cur, y_cur, config: DriftConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per batch: any drift verdict (data, concept, prediction) and the data verdict, identity model."""
    any_alarm, data_alarm, _ = verdicts(x_ref, y_ref, x_cur, y_cur, config)
    return any_alarm, data_alarm


def verdicts(x_ref, y_ref, x_cur, y_cur, config: DriftConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per batch: any drift verdict, the data verdict and the concept verdict, identity model."""
    features = x_ref.shape[2]
    p_features = np.stack([ks_pvalues(x_ref[:, :, j], x_cur[:, :, j]) for j in range(features)], axis=1)
    p_residuals = ks_pvalues(y_ref - x_ref[:, :, 0], y_cur - x_cur[:, :, 0])
    p_predictions = p_features[:, 0]  # predictions of f(x) = x0 are x0
    joint_runs = joint_applies(config) and x_ref.shape[1] + x_cur.shape[1] <= config.joint_max_rows
    if joint_runs:
        p_joint = joint_tests(
            x_ref, x_cur, config.permutations, config.permutation_seed, config.joint_test == "energy_mean"
        ).p_value
    any_alarm, data_alarm, concept_alarm = [], [], []
    for i in range(x_ref.shape[0]):
        results = [
            TestResult("ks", "data", f"x{j}", None, p_features[i, j], config.alpha, None)
            for j in range(features)
        ]
        results.append(TestResult("ks", "concept", "residuals", None, p_residuals[i], config.alpha, None))
        results.append(
            TestResult("ks", "prediction", "predictions", None, p_predictions[i], config.alpha, None)
        )
        joint = None
        if joint_runs:
            joint = TestResult(config.joint_test, "data", "inputs", None, p_joint[i], config.alpha, None)
        correct(results, config, joint)
        data = any(r.counts for r in results if r.kind == "data") or bool(joint and joint.counts)
        data_alarm.append(data)
        concept_alarm.append(any(r.counts for r in results if r.kind == "concept"))
        any_alarm.append(data or any(r.counts for r in results if r.kind != "data"))
    return np.array(any_alarm), np.array(data_alarm), np.array(concept_alarm)


@pytest.mark.parametrize("rows", [20, 100, 1000])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_family_wise_false_alarms_stay_under_five_percent(layout, rows):
    rng = np.random.default_rng([17, rows, LAYOUTS.index(layout)])
    x_ref, y_ref = draw(layout, BATCHES, REFERENCE_ROWS, rng)
    x_cur, y_cur = draw(layout, BATCHES, rows, rng)
    any_alarm, _ = family_alarms(x_ref, y_ref, x_cur, y_cur, CONFIG)
    assert any_alarm.mean() <= FWER_LIMIT, f"{layout}, {rows} rows: {any_alarm.mean():.2%} false alarms"


def test_the_seed_drift_is_found_in_twenty_row_batches():
    rng = np.random.default_rng(1717)
    x_ref, y_ref = draw("seed", 1000, REFERENCE_ROWS, rng)
    x_cur, y_cur = draw("seed", 1000, 20, rng)
    _, data_alarm = family_alarms(x_ref, y_ref, x_cur + 25, y_cur + 25, DriftConfig(permutations=199))
    _, before_data = family_alarms(
        x_ref, y_ref, x_cur + 25, y_cur + 25, DriftConfig(joint_test="none")
    )
    assert data_alarm.mean() >= 0.95  # bench/drift_quality.py: 2,000 batches with 999 relabellings
    assert before_data.mean() < 0.8  # per-feature KS under Holm alone: about 69 %


ATTRIBUTION_BATCHES = 2000
# 97 % minus one binomial standard error at 2,000 batches (0.38 points): the energy-only joint test
# (96.3 % in bench/drift_quality.py) must not pass it; seeded, so the figures are fixed.
ATTRIBUTION_LIMIT = 0.97 - np.sqrt(0.97 * 0.03 / ATTRIBUTION_BATCHES)


@pytest.fixture(scope="module")
def twenty_row_batches():
    """2,000 references of 80 rows with data-drift (+25 on both) and concept-drift (y + 10) batches."""
    rng = np.random.default_rng(170)
    x_ref, y_ref = draw("seed", ATTRIBUTION_BATCHES, REFERENCE_ROWS, rng)
    x_cur, y_cur = draw("seed", ATTRIBUTION_BATCHES, 20, rng)
    return x_ref, y_ref, x_cur, y_cur


def attribution(batches, config: DriftConfig) -> tuple[float, float]:
    """(data drift found and not called concept drift, concept drift found and not called data drift)."""
    x_ref, y_ref, x_cur, y_cur = batches
    _, data, concept = verdicts(x_ref, y_ref, x_cur + 25, y_cur + 25, config)
    _, data_c, concept_c = verdicts(x_ref, y_ref, x_cur, y_cur + 10, config)
    return float((data & ~concept).mean()), float((concept_c & ~data_c).mean())


def test_twenty_row_drift_is_attributed_to_the_right_kind(twenty_row_batches):
    data, concept = attribution(twenty_row_batches, DriftConfig())
    assert data >= ATTRIBUTION_LIMIT, f"data drift attributed in {data:.2%}"
    assert concept >= ATTRIBUTION_LIMIT, f"concept drift attributed in {concept:.2%}"


def test_the_energy_only_joint_test_misses_the_attribution_target(twenty_row_batches):
    data, _ = attribution(twenty_row_batches, DriftConfig(joint_test="energy"))
    assert data < ATTRIBUTION_LIMIT, f"energy alone attributed {data:.2%}: the test above cannot fail"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_simulated_decisions_equal_the_detectors(layout):
    rng = np.random.default_rng(99)
    x_ref, y_ref = draw(layout, 12, REFERENCE_ROWS, rng)
    x_cur, y_cur = draw(layout, 12, 20, rng)
    x_cur[6:] += 25  # half of them drifted, so both answers occur
    any_alarm, data_alarm = family_alarms(x_ref, y_ref, x_cur, y_cur, CONFIG)
    names = [f"x{j}" for j in range(x_ref.shape[2])]
    for i in range(12):
        reference = pd.DataFrame(x_ref[i], columns=names)
        batch = pd.DataFrame(x_cur[i], columns=names)
        detector = DriftDetector(CONFIG).fit(reference, predictions=x_ref[i, :, 0], labels=y_ref[i])
        report = detector.score(batch, predictions=x_cur[i, :, 0], labels=y_cur[i])
        assert report.data_drift == data_alarm[i]
        assert (report.data_drift or report.concept_drift or report.prediction_drift) == any_alarm[i]
    assert data_alarm.any() and not data_alarm.all()
