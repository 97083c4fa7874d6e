"""Two-sample Kolmogorov-Smirnov test from pre-sorted samples, equal to ``scipy.stats.ks_2samp``.

Why not call scipy: ``ks_2samp`` sorts both samples and binary-searches 2 (n1 + n2) points on every
call. The reference never changes, so the profile keeps it sorted with its distinct values and
cumulative counts; the statistic is then the largest ECDF gap, found from a coarse grid of reference
points and refined only in the blocks whose bound could still beat the best gap (exact, not an
approximation). The p-value reuses scipy's own routines, including its choice of the exact method when
both samples have at most 10,000 values and of the asymptotic Kolmogorov distribution above that, so
statistic and p-value match ``ks_2samp(method="auto")``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import distributions

try:  # scipy's exact small-sample routine; pinned scipy 1.17 ships it under this private name.
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - only on a scipy that moved it
    _attempt_exact_2kssamp = None

MAX_EXACT_N = 10_000  # scipy's MAX_AUTO_N: method="auto" is exact when max(n1, n2) <= this
COARSE_BLOCK = 64  # reference points per block of the coarse-to-fine search
COARSE_MIN = 4096  # below this many distinct reference values, evaluate every one directly
TAIL_BOUND = 1e-10  # below this, the asymptotic p-value is reported as Massart's bound (see ks_pvalue)


@dataclass(frozen=True)
class KsIndex:
    """Distinct sorted reference values and how many reference values are <= each (the ECDF steps).

    ``right_counts`` is None when the reference has no ties: the count at index k is then k + 1, which
    saves an array as large as the reference.
    """

    values: np.ndarray
    right_counts: np.ndarray | None
    n: int

    def counts_at(self, k: np.ndarray) -> np.ndarray:
        return k + 1 if self.right_counts is None else self.right_counts[k]


def build_ks_index(sorted_values: np.ndarray) -> KsIndex:
    """Index of a sorted finite sample (built once per profile, O(n))."""
    s = np.asarray(sorted_values, dtype=np.float64)
    n = int(s.size)
    if n < 2:
        return KsIndex(s, None, n)
    distinct_next = s[1:] != s[:-1]
    if bool(distinct_next.all()):
        return KsIndex(s, None, n)
    last = np.empty(n, dtype=bool)
    last[:-1] = distinct_next
    last[-1] = True
    idx = np.flatnonzero(last)
    return KsIndex(s[idx], idx + 1, n)


def _candidates(index: KsIndex, cur: np.ndarray, k: np.ndarray) -> tuple[float, float]:
    """Exact ECDF gaps at distinct reference values ``k``: (max F1 - F2, max F2 - F1 just below them).

    F1 - F2 peaks at reference points; F2 - F1 peaks at the last current point below a reference
    point, where F2 = (#current < u_k) / n2 and F1 is the count at the previous distinct value.
    Each gap is computed as a/n1 - b/n2 with the same integers as scipy, so the floats are identical.
    """
    n1, n2 = index.n, cur.size
    u = index.values[k]
    left = np.searchsorted(cur, u, side="left")
    right = np.searchsorted(cur, u, side="right")
    c = index.counts_at(k)
    c_prev = np.where(k > 0, index.counts_at(np.maximum(k - 1, 0)), 0)
    up = c / n1 - right / n2
    down = left / n2 - c_prev / n1
    return float(up.max()), float(down.max())


def ks_statistic(index: KsIndex, cur_sorted: np.ndarray) -> float:
    """sup |F_ref - F_cur| for a sorted finite current sample (both samples non-empty)."""
    cur = cur_sorted
    n_distinct = index.values.size
    if n_distinct <= COARSE_MIN:
        up, down = _candidates(index, cur, np.arange(n_distinct))
        return max(up, max(down, 0.0))
    n1, n2 = index.n, cur.size
    coarse = np.unique(np.append(np.arange(0, n_distinct, COARSE_BLOCK), n_distinct - 1))
    u = index.values[coarse]
    left = np.searchsorted(cur, u, side="left")
    right = np.searchsorted(cur, u, side="right")
    c = index.counts_at(coarse)
    c_prev = np.where(coarse > 0, index.counts_at(np.maximum(coarse - 1, 0)), 0)
    best_up = float((c / n1 - right / n2).max())
    best_down = max(float((left / n2 - c_prev / n1).max()), 0.0)
    # Bounds for the distinct values strictly inside block j = (coarse[j], coarse[j+1]):
    # counts there are <= c[j+1] and "right" >= right[j]; "left" <= left[j+1] and previous counts >= c[j].
    bound_up = c[1:] / n1 - right[:-1] / n2
    bound_down = left[1:] / n2 - c[:-1] / n1
    todo = np.flatnonzero(((bound_up > best_up) | (bound_down > best_down)) & (np.diff(coarse) > 1))
    if todo.size:
        starts, stops = coarse[todo] + 1, coarse[todo + 1]
        lengths = stops - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        inner = np.arange(int(lengths.sum())) + offsets
        up, down = _candidates(index, cur, inner)
        best_up, best_down = max(best_up, up), max(best_down, down)
    return max(best_up, best_down)


@lru_cache(maxsize=8192)
def _exact(n1: int, n2: int, g: int, d: float) -> tuple[bool, float, float]:
    """scipy's exact two-sided p-value, remembered: batches of one size against one reference meet
    the same lattice statistics again and again (most of a small push's scoring time otherwise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")


def ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """(statistic, p-value) as ``ks_2samp(method="auto", alternative="two-sided")`` reports them.

    In the exact regime scipy snaps the statistic to the lattice h / lcm(n1, n2); that snapped value
    is returned as well so the statistic matches scipy's too. In the asymptotic regime, p-values
    below 1e-10 are reported as their upper bound 2 exp(-2 n d^2) (within 1e-10 of scipy's value).
    """
    if n1 < 1 or n2 < 1:
        raise ValueError("KS needs at least one value in each sample")
    g = math.gcd(n1, n2)
    mode = "exact" if max(n1, n2) <= MAX_EXACT_N else "asymp"
    prob = float("nan")
    if mode == "exact" and _attempt_exact_2kssamp is not None:
        success, d, prob = _exact(n1, n2, g, d)
        if not success:
            mode = "asymp"
    elif mode == "exact":  # pragma: no cover
        mode = "asymp"
    if mode == "asymp":
        m, n = sorted([float(n1), float(n2)], reverse=True)
        en = np.round(m * n / (m + n))
        t = en * d * d
        bound = 2.0 * math.exp(-2.0 * t)
        # scipy would sum Smirnov's exact series for 2.2 <= t < 370, O(n) work (0.5 s at n = 500,000),
        # for a p-value that Massart's bound 2 exp(-2 n d^2) already caps: when that bound is below
        # 1e-10, report it; it differs from scipy by less than 1e-10 and changes no usable decision.
        in_tail = en > 140 and bound < TAIL_BOUND and t < 370.0
        prob = bound if in_tail else distributions.kstwo.sf(d, en)
    return float(d), float(np.clip(prob, 0.0, 1.0))


def ks_test(index: KsIndex, cur_sorted: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test of a sorted finite current sample."""
    d = ks_statistic(index, cur_sorted)
    return ks_pvalue(d, index.n, int(cur_sorted.size))
