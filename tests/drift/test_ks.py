"""KS from the pre-sorted profile equals scipy.stats.ks_2samp(method="auto"): statistic and p-value."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from monitor.drift.stattests.ks import build_ks_index, ks_test

TOL = 1e-9
# scipy warns when its exact method falls back to asymp; ours follows it silently
pytestmark = pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")


def ours(a, b):
    return ks_test(build_ks_index(np.sort(np.asarray(a, dtype=float))), np.sort(np.asarray(b, dtype=float)))


def assert_matches_scipy(a, b):
    statistic, p_value = ours(a, b)
    expected = ks_2samp(a, b, method="auto")
    assert abs(statistic - expected.statistic) <= TOL
    assert abs(p_value - expected.pvalue) <= TOL


floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=1, max_size=80), st.lists(floats, min_size=1, max_size=80))
def test_ks_matches_scipy_on_random_samples(a, b):
    assert_matches_scipy(a, b)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=60),
    st.lists(st.integers(-3, 4), min_size=1, max_size=60),
)
def test_ks_matches_scipy_with_heavy_ties(a, b):
    assert_matches_scipy(np.array(a, dtype=float), np.array(b, dtype=float))


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=4), st.lists(floats, min_size=1, max_size=4))
def test_ks_matches_scipy_on_tiny_samples(a, b):
    assert_matches_scipy(a, b)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(4_100, 30_000),
    st.integers(50, 30_000),
    st.floats(0.0, 0.2),
    st.booleans(),
)
def test_ks_matches_scipy_on_large_samples_through_the_coarse_search(seed, n1, n2, shift, rounded):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n1), rng.normal(shift, 1.0, size=n2)
    if rounded:  # ties inside and across the samples
        a, b = np.round(a, 2), np.round(b, 2)
    assert_matches_scipy(a, b)


def test_ks_uses_the_asymptotic_distribution_above_ten_thousand_values():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=10_001), rng.normal(size=200)
    assert_matches_scipy(a, b)


def test_ks_statistic_is_one_for_disjoint_samples():
    statistic, p_value = ours([1.0, 2.0, 3.0], [10.0, 11.0])
    assert statistic == 1.0
    assert p_value == pytest.approx(0.2)  # 2 of the C(5, 2) = 10 orderings are this extreme


def test_ks_statistic_is_zero_for_identical_samples():
    statistic, p_value = ours([1.0, 2.0, 2.0, 5.0], [1.0, 2.0, 2.0, 5.0])
    assert statistic == 0.0
    assert p_value == 1.0


@pytest.mark.parametrize("shift", [0.02, 0.03, 0.05, 0.1])
def test_ks_tiny_asymptotic_p_values_stay_within_1e_10_of_scipy(shift):
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=40_000), rng.normal(shift, 1.0, size=40_000)
    statistic, p_value = ours(a, b)
    expected = ks_2samp(a, b, method="auto")
    assert statistic == expected.statistic
    assert abs(p_value - expected.pvalue) <= 1e-10
