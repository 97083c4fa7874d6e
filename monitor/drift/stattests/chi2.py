"""Chi-square test of homogeneity for a categorical column (reference counts vs batch counts).

A two-sample test on the 2 x K table, not a goodness-of-fit against reference shares: new categories
(zero in the reference) then stay finite. Equal to ``scipy.stats.chi2_contingency(table,
correction=False)`` after dropping categories absent from both samples.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2 as chi2_distribution


def chi2_homogeneity(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) for two aligned count vectors over the same categories."""
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(chi2_distribution.sf(statistic, table.shape[1] - 1))
