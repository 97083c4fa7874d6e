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

from dataclasses import dataclass
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
    outcome = joint_test(reference, current, permutations, seed, with_mean=False)
    return outcome.energy, outcome.p_value


def energy_tests(
    references: np.ndarray, currents: np.ndarray, permutations: int = 999, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``energy_test`` of many pairs of samples of the same sizes at once: (R, n, d) and (R, m, d).

    Every pair sees the same relabellings (those of ``batch_rows`` with this seed). Simulations use it
    to score thousands of batches without a Python loop per relabelling.
    """
    outcome = joint_tests(references, currents, permutations, seed, with_mean=False)
    return outcome.energy, outcome.p_value


@dataclass(frozen=True)
class JointOutcome:
    """Statistics and permutation p-values of the joint test of R pairs of samples (arrays of R values).

    ``energy``: energy distance on the pooled-std scale; ``mean_shift``: squared Euclidean distance
    between the batch's and the reference's column means on that scale (the sum of squared
    standardised mean differences; NaN when not computed). ``p_energy`` and ``p_mean`` are their own
    permutation p-values; ``p_value`` is the test's: ``p_energy`` alone, or with the mean shift the
    permutation p-value of min(p_energy, p_mean) (Tippett's nonparametric combination).
    """

    energy: np.ndarray
    mean_shift: np.ndarray
    p_energy: np.ndarray
    p_mean: np.ndarray
    p_value: np.ndarray


@dataclass(frozen=True)
class OneJointOutcome:
    energy: float
    mean_shift: float
    p_energy: float
    p_mean: float
    p_value: float


def joint_test(
    reference: np.ndarray, current: np.ndarray, permutations: int = 999, seed: int = 0, with_mean: bool = True
) -> OneJointOutcome:
    """The joint test of one reference and one batch (rows of the same columns); see ``joint_tests``."""
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ValueError("the energy test needs two 2-D arrays of rows with the same columns")
    out = joint_tests(reference[None], current[None], permutations, seed, with_mean)
    return OneJointOutcome(*(float(getattr(out, f)[0]) for f in JointOutcome.__dataclass_fields__))


def _exceedances(values: np.ndarray) -> np.ndarray:
    """For each of the K values of each row: how many values of that row are >= it (ties count).

    Values equal up to rounding (the same split reached by two relabellings) count as ties.
    """
    tolerance = 1e-10 * np.maximum(np.abs(values), 1e-300) + 1e-14
    ordered = np.sort(values, axis=1)
    k = values.shape[1]
    rows = zip(ordered, values, tolerance, strict=True)
    return np.stack([k - np.searchsorted(row, v - t, side="left") for row, v, t in rows])


def joint_tests(
    references: np.ndarray,
    currents: np.ndarray,
    permutations: int = 999,
    seed: int = 0,
    with_mean: bool = True,
) -> JointOutcome:
    """The joint permutation test of R pairs of samples of the same sizes: (R, n, d) and (R, m, d).

    Each relabelling b (and the observed split, b = 0) gets the energy distance E_b and, with
    ``with_mean``, the mean shift M_b. A statistic's partial p-value at b is #{c: T_c >= T_b} / (B + 1)
    over the B + 1 splits; the observed one is the usual (1 + #{relabellings >= observed}) / (B + 1).
    With the mean shift, the test statistic is q_b = min(p_E(b), p_M(b)) and the p-value is
    #{b: q_b <= q_0} / (B + 1) (Pesarin's nonparametric combination, Tippett's rule): the B + 1 splits
    are exchangeable without drift, and q is a symmetric function of them, so the p-value stays exact
    under any dependence between the columns and between the two statistics.
    """
    r, n, d = references.shape
    m = currents.shape[1]
    if n < 1 or m < 1:
        raise ValueError("the energy test needs at least one reference row and one batch row")
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    big_n = n + m
    labels = _labels(big_n, m, permutations, seed)
    observed_labels = np.zeros((1, big_n))
    observed_labels[0, n:] = 1.0
    fields = {name: np.full(r, np.nan) for name in JointOutcome.__dataclass_fields__}
    # bounds the (chunk, B, N) product and the (chunk, B, d) batch sums
    chunk = max(1, 4_000_000 // (permutations * (big_n + d)))
    for start in range(0, r, chunk):
        stop = min(r, start + chunk)
        pairs = zip(references[start:stop], currents[start:stop], strict=True)
        scaled = np.stack([pooled_scaled(x, y) for x, y in pairs])
        distances = np.stack([cdist(z, z) for z in scaled])
        row_sums = distances.sum(axis=2)  # (c, N)
        total = row_sums.sum(axis=1)[:, None]

        def energy(marks: np.ndarray, distances=distances, row_sums=row_sums, total=total) -> np.ndarray:
            # marks: (k, N) 0/1 rows marking the batch; means over the three blocks of each D
            cc = np.einsum("ckj,kj->ck", np.matmul(marks, distances), marks)
            ar = row_sums @ marks.T
            return 2 * (ar - cc) / (n * m) - cc / (m * m) - (total - 2 * ar + cc) / (n * n)

        splits = np.concatenate([observed_labels, labels])  # (B + 1, N): the observed split first
        e_all = energy(splits)
        exceed_e = _exceedances(e_all)
        fields["energy"][start:stop] = e_all[:, 0]
        fields["p_energy"][start:stop] = exceed_e[:, 0] / (permutations + 1)
        if not with_mean:
            fields["p_value"][start:stop] = fields["p_energy"][start:stop]
            continue
        # batch column sums per split: (c, B + 1, d); mean difference = s (1/m + 1/n) - colsum / n
        sums = np.matmul(splits, scaled)
        diff = sums * (1 / m + 1 / n) - scaled.sum(axis=1)[:, None, :] / n
        m_all = np.einsum("cbd,cbd->cb", diff, diff)
        exceed_m = _exceedances(m_all)
        fields["mean_shift"][start:stop] = m_all[:, 0]
        fields["p_mean"][start:stop] = exceed_m[:, 0] / (permutations + 1)
        # smaller q = stronger evidence; compare integer counts (exact, no rounding)
        q = np.minimum(exceed_e, exceed_m)
        fields["p_value"][start:stop] = np.count_nonzero(q <= q[:, :1], axis=1) / (permutations + 1)
    return JointOutcome(**fields)
