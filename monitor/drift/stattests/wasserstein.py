"""First Wasserstein distance between two sorted samples, in O(n1 + n2) without searching.

W1 is the integral of |Q_ref(q) - Q_cur(q)| over q in (0, 1], where Q are the empirical quantile
functions: step functions with steps at i/n1 and j/n2. With equal sizes the steps coincide and
W1 = mean |a_i - b_i|. Otherwise each interval of the merged step grid is found by integer arithmetic
(the number of j/n2 below i/n1 is floor((i*n2 - 1) / n1)), so no merge sort or binary search is needed.
Equal to ``scipy.stats.wasserstein_distance`` up to floating-point rounding.
"""

from __future__ import annotations

import numpy as np


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between sorted finite samples ``a`` (n1 values) and ``b`` (n2 values), both non-empty."""
    n1, n2 = int(a.size), int(b.size)
    if n1 == 0 or n2 == 0:
        raise ValueError("Wasserstein distance needs at least one value in each sample")
    if n1 == n2:
        diff = np.subtract(a, b)
        np.abs(diff, out=diff)
        return float(diff.sum() / n1)
    i = np.arange(1, n1 + 1, dtype=np.int64)
    j = np.arange(1, n2 + 1, dtype=np.int64)
    # Intervals ending at a reference step i/n1: the current quantile there is b[jb], jb = #(j/n2 < i/n1).
    jb = (i * n2 - 1) // n1
    start_a = np.maximum((i - 1) / n1, jb / n2)
    width_a = i / n1 - start_a
    # Intervals ending at a current step j/n2: the reference quantile is a[ia], ia = #(i/n1 <= j/n2);
    # ties put the reference step first, so the current interval has zero width there.
    ia = (j * n1) // n2
    start_b = np.maximum((j - 1) / n2, ia / n1)
    width_b = np.maximum(j / n2 - start_b, 0.0)
    np.minimum(ia, n1 - 1, out=ia)
    np.minimum(jb, n2 - 1, out=jb)
    total = np.dot(np.abs(a - b[jb]), width_a) + np.dot(np.abs(a[ia] - b), width_b)
    return float(total)


def normalised_wasserstein(a: np.ndarray, b: np.ndarray, reference_std: float) -> float:
    """W1 divided by the reference standard deviation (ddof=0), so 0.1 means a tenth of a spread.

    A constant reference (std 0) is normalised by 1: the score is then the distance in the column's units.
    """
    scale = reference_std if reference_std > 0 and np.isfinite(reference_std) else 1.0
    return wasserstein_sorted(a, b) / scale
