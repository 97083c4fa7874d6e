"""Multiple-testing control across every p-value test run on one batch.

Adjusted p-values (compare them with alpha): Bonferroni and Holm control the family-wise error rate
(probability of any false alarm) under any dependence; Benjamini-Hochberg controls the false discovery
rate (assumes independent or positively dependent tests) and alarms more often on clean data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS: tuple[str, ...] = ("none", "bonferroni", "holm", "bh")


def adjust_pvalues(p_values: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values in the input order; empty input gives an empty array."""
    p = np.asarray(p_values, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(METHODS)}")
    if p.size and not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p-values must be between 0 and 1; drop tests that produced no p-value first")
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        # step-down: p_(k) * (m - k), made monotone from the smallest upwards
        adjusted_sorted = np.maximum.accumulate(np.minimum(ranked * (m - np.arange(m)), 1.0))
    else:
        # step-up: p_(k) * m / (k + 1), made monotone from the largest downwards
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted
