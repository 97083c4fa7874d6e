"""Energy-distance two-sample test on rows of several numeric columns, with a permutation p-value.

One test of "the joint distribution of the inputs moved", pooling the evidence of every column (Szekely
and Rizzo's energy distance: 2 E|X - Y| - E|X - X'| - E|Y - Y'| with Euclidean distances, zero if and
only if the distributions are equal). Columns are scaled by their pooled standard deviation (reference
and batch together), which does not depend on which rows are labelled reference, so the permutation
p-value stays exact: under "no drift" the rows are exchangeable and every relabelling is equally likely.

The statistic of every relabelling comes from one pooled distance matrix D and a 0/1 row vector a
marking the batch rows: a'Da, a'D1 and 1'D1 give the three means, so B relabellings cost one (B x N)
by (N x N) matrix product (the relabellings of one batch size are drawn once and cached: at most four
(permutations x N) matrices, 8 MB each at N = 1,000). That is cheap only for small samples
(N = reference + batch rows); the detector runs it up to ``DriftConfig.joint_max_rows`` and keeps
the per-column KS path above.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.spatial.distance import cdist


def batch_rows(n_rows: int, n_current: int, permutations: int, seed: int) -> np.ndarray:
    """Row indices of the batch under each random relabelling: (permutations, n_current) ints.

    Relabelling b takes the first ``n_current`` entries of row b of
    ``numpy.random.default_rng(seed).permuted(np.tile(np.arange(n_rows), (permutations, 1)), axis=1)``,
    so a reference loop with the same seed sees the same relabellings.
    """
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(n_rows), (permutations, 1)), axis=1)[:, :n_current]


@lru_cache(maxsize=4)
def _labels(n_rows: int, n_current: int, permutations: int, seed: int) -> np.ndarray:
    """0/1 rows marking the batch under each relabelling; cached: batches of one size reuse them."""
    labels = np.zeros((permutations, n_rows))
    np.put_along_axis(labels, batch_rows(n_rows, n_current, permutations, seed), 1.0, axis=1)
    labels.setflags(write=False)
    return labels


def pooled_scaled(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Reference rows then batch rows, each column divided by its pooled std (constant columns by 1)."""
    pooled = np.concatenate([np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)])
    scale = pooled.std(axis=0)
    scale[~(scale > 0)] = 1.0
    return pooled / scale


def energy_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Energy distance (V-statistic, squared form) between two samples of rows, Euclidean distances."""
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    return float(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())


def energy_test(
    reference: np.ndarray, current: np.ndarray, permutations: int = 999, seed: int = 0
) -> tuple[float, float]:
    """(statistic on the pooled-std scale, permutation p-value) for rows of the same columns.

    p = (1 + #{relabellings with statistic >= observed}) / (permutations + 1): never 0 and valid
    (P(p <= u) <= u without drift) for any number of relabellings.
    """
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ValueError("the energy test needs two 2-D arrays of rows with the same columns")
    statistics, p_values = energy_tests(reference[None], current[None], permutations, seed)
    return float(statistics[0]), float(p_values[0])


def energy_tests(
    references: np.ndarray, currents: np.ndarray, permutations: int = 999, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``energy_test`` of many pairs of samples of the same sizes at once: (R, n, d) and (R, m, d).

    Every pair sees the same relabellings (those of ``batch_rows`` with this seed). Simulations use it
    to score thousands of batches without a Python loop per relabelling.
    """
    r, n, d = references.shape
    m = currents.shape[1]
    if n < 1 or m < 1:
        raise ValueError("the energy test needs at least one reference row and one batch row")
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    big_n = n + m
    labels = _labels(big_n, m, permutations, seed)
    observed_labels = np.zeros(big_n)
    observed_labels[n:] = 1.0
    observed = np.empty(r)
    p_values = np.empty(r)
    chunk = max(1, 4_000_000 // (permutations * big_n))  # bounds the (chunk, B, N) product
    for start in range(0, r, chunk):
        stop = min(r, start + chunk)
        distances = np.stack(
            [cdist(x, x) for x in map(pooled_scaled, references[start:stop], currents[start:stop])]
        )
        row_sums = distances.sum(axis=2)  # (c, N)
        total = row_sums.sum(axis=1)[:, None]

        def statistics(marks: np.ndarray, distances=distances, row_sums=row_sums, total=total) -> np.ndarray:
            # marks: (k, N) 0/1 rows marking the batch; means over the three blocks of each D
            cc = np.einsum("ckj,kj->ck", np.matmul(marks, distances), marks)
            ar = row_sums @ marks.T
            return 2 * (ar - cc) / (n * m) - cc / (m * m) - (total - 2 * ar + cc) / (n * n)

        obs = statistics(observed_labels[None])[:, 0]
        # Relabellings equal to the observed split give the same statistic up to rounding: ties count.
        tolerance = 1e-10 * np.maximum(np.abs(obs), 1e-300) + 1e-14
        exceed = np.count_nonzero(statistics(labels) >= (obs - tolerance)[:, None], axis=1)
        observed[start:stop] = obs
        p_values[start:stop] = (1 + exceed) / (permutations + 1)
    return observed, p_values
