"""Population stability index over reference-quantile bins.

Bins are fixed at fit time from the reference quantiles (``psi_bins`` equal-frequency bins, duplicate
edges dropped), so scoring only needs the current sample's counts per bin: a binary search of each
edge into the sorted current sample. Bin b is (edge[b-1], edge[b]] with open outer bins.

Empty bins would make the logarithm infinite; both shares are floored at ``PSI_EPSILON`` = 1e-4
(as Evidently does), which bounds one bin's contribution. PSI >= 0.2 is the usual "significant shift".
"""

from __future__ import annotations

import numpy as np

PSI_EPSILON = 1e-4


def quantile_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of ``bins`` equal-frequency bins (fewer when the reference has ties)."""
    if sorted_values.size == 0:
        return np.empty(0)
    qs = np.quantile(sorted_values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(qs)


def bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (len(edges) + 1 bins) of a sorted sample: O(bins log n)."""
    cum = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate(([0], cum, [sorted_values.size]))).astype(np.int64)


def psi_from_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """sum((p_cur - p_ref) * ln(p_cur / p_ref)) with shares floored at PSI_EPSILON."""
    p_ref = np.maximum(reference_counts / max(reference_counts.sum(), 1), PSI_EPSILON)
    p_cur = np.maximum(current_counts / max(current_counts.sum(), 1), PSI_EPSILON)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))
