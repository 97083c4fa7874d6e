"""Concept drift and prediction drift: the model's errors and outputs against the profile's baselines.

Kept apart from data drift: data drift asks whether the inputs moved, concept drift whether the relation
between inputs and target moved (the residuals y - f(x) changed), prediction drift whether the model's
outputs moved. An identity-like model under pure data drift keeps its residual distribution, so the
residual test separates the two.
"""

from __future__ import annotations

import math

import numpy as np

from monitor.drift.columns import SortedColumn


def residuals(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """labels - predictions; NaN where either is missing, so missing labels never count as errors."""
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions ({predictions.size} values) and labels ({labels.size} values) must have one value "
            "per row of the batch"
        )
    return labels - predictions


def error_metrics(sorted_residuals: SortedColumn) -> tuple[float | None, float | None]:
    """(MSE, MAE) over the finite residuals; None when there is none."""
    r = sorted_residuals.finite
    if r.size == 0:
        return None, None
    return float(np.mean(r * r)), float(np.mean(np.abs(r)))


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline; inf when the baseline is a perfect 0 and the batch is not, None when unknown."""
    if value is None or baseline is None:
        return None
    if baseline == 0:
        return 1.0 if value == 0 else math.inf
    return value / baseline
