"""Vectorised simulation of the engine's decisions on many batches of the seed's layout, identity model.

Scoring thousands of batches through ``DriftDetector.score`` takes minutes, so this computes the same
p-values vectorised (KS statistics of all batches at once, p-values from the engine's own
``ks_pvalue``, the engine's ``joint_tests`` over all batches at once) and decides with the engine's
own ``decision.correct`` and ``TestResult.counts``. ``test_joint_fwer.py`` checks on real reports
that this is what the detector does; ``bench/drift_quality.py`` uses it for its 2,000-repetition
attribution figures.
"""

import numpy as np

from monitor.drift import DriftConfig
from monitor.drift.decision import correct, joint_applies
from monitor.drift.report import TestResult
from monitor.drift.stattests.energy import joint_tests
from monitor.drift.stattests.ks import ks_pvalue


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


def joint_p_values(x_ref: np.ndarray, x_cur: np.ndarray, config: DriftConfig) -> dict[str, np.ndarray]:
    """The joint test's p-values of every batch, for both joint tests (one run gives both)."""
    outcome = joint_tests(x_ref, x_cur, config.permutations, config.permutation_seed, with_mean=True)
    return {"energy_mean": outcome.p_value, "energy": outcome.p_energy}


def verdicts(
    x_ref, y_ref, x_cur, y_cur, config: DriftConfig, p_joint: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per batch: any drift verdict, the data verdict and the concept verdict, identity model.

    ``p_joint``: the joint test's p-values when already computed (``joint_p_values``)."""
    features = x_ref.shape[2]
    p_features = np.stack([ks_pvalues(x_ref[:, :, j], x_cur[:, :, j]) for j in range(features)], axis=1)
    p_residuals = ks_pvalues(y_ref - x_ref[:, :, 0], y_cur - x_cur[:, :, 0])
    p_predictions = p_features[:, 0]  # predictions of f(x) = x0 are x0
    joint_runs = joint_applies(config) and x_ref.shape[1] + x_cur.shape[1] <= config.joint_max_rows
    if joint_runs and p_joint is None:
        p_joint = joint_p_values(x_ref, x_cur, config)[config.joint_test]
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
