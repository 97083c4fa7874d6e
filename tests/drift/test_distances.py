"""PSI, normalised Wasserstein and chi-square against their direct formulas."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, wasserstein_distance

from monitor.drift.stattests.chi2 import chi2_homogeneity
from monitor.drift.stattests.psi import PSI_EPSILON, bin_counts, psi_from_counts, quantile_edges
from monitor.drift.stattests.wasserstein import normalised_wasserstein, wasserstein_sorted

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=60), st.lists(finite, min_size=1, max_size=60))
def test_wasserstein_matches_scipy_for_any_sizes(a, b):
    ours = wasserstein_sorted(np.sort(a), np.sort(b))
    assert np.isclose(ours, wasserstein_distance(a, b), rtol=1e-9, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1_000, 20_000), st.integers(1_000, 20_000))
def test_wasserstein_matches_scipy_on_large_unequal_samples(seed, n1, n2):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n1), rng.normal(0.3, 2.0, size=n2)
    assert np.isclose(wasserstein_sorted(np.sort(a), np.sort(b)), wasserstein_distance(a, b), rtol=1e-9)


def test_normalised_wasserstein_divides_by_the_reference_population_std():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 3, 500), rng.normal(1, 3, 300)
    expected = wasserstein_distance(a, b) / np.std(a)
    assert np.isclose(normalised_wasserstein(np.sort(a), np.sort(b), float(np.std(a))), expected, rtol=1e-9)


def test_normalised_wasserstein_of_a_constant_reference_is_in_column_units():
    assert normalised_wasserstein(np.array([2.0, 2.0]), np.array([3.0, 5.0]), 0.0) == 2.0


def direct_psi(reference, current, edges):
    """PSI written out: shares per bin (edges are right-closed), floored at epsilon."""
    bins = np.concatenate(([-np.inf], edges, [np.inf]))
    pairs = list(zip(bins[:-1], bins[1:], strict=True))
    ref = np.array([np.sum((reference > lo) & (reference <= hi)) for lo, hi in pairs])
    cur = np.array([np.sum((current > lo) & (current <= hi)) for lo, hi in pairs])
    p = np.maximum(ref / ref.sum(), PSI_EPSILON)
    q = np.maximum(cur / cur.sum(), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=80), st.lists(finite, min_size=1, max_size=80), st.integers(2, 12)
)
def test_psi_matches_the_direct_formula_on_reference_quantile_bins(a, b, bins):
    a, b = np.sort(a), np.sort(b)
    edges = quantile_edges(a, bins)
    ours = psi_from_counts(bin_counts(a, edges), bin_counts(b, edges))
    assert np.isclose(ours, direct_psi(a, b, edges), rtol=1e-12, atol=1e-12)


def test_psi_bins_are_reference_deciles_by_default():
    a = np.arange(1.0, 101.0)
    counts = bin_counts(a, quantile_edges(a, 10))
    assert counts.tolist() == [10] * 10


def test_psi_is_zero_for_the_same_distribution():
    a = np.arange(100.0)
    edges = quantile_edges(a, 10)
    assert psi_from_counts(bin_counts(a, edges), bin_counts(a, edges)) == 0.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=2, max_size=6).flatmap(
        lambda ref: st.tuples(
            st.just(ref), st.lists(st.integers(0, 50), min_size=len(ref), max_size=len(ref))
        )
    )
)
def test_chi2_matches_scipy_contingency_without_continuity_correction(pair):
    ref, cur = np.array(pair[0]), np.array(pair[1])
    statistic, p_value = chi2_homogeneity(ref, cur)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected = chi2_contingency(table, correction=False)
    assert np.isclose(statistic, expected.statistic, rtol=1e-9)
    assert np.isclose(p_value, expected.pvalue, rtol=1e-9, atol=1e-12)
