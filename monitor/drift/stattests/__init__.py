"""Registry of per-column drift tests, chosen by name in ``DriftConfig``.

Each test is a short pure function of the reference part of the profile and the current sample, plus a
descriptor: name, column types, default threshold (None for p-value tests: they use alpha), and whether
it yields a p-value (then it joins the batch's multiple-testing family; otherwise it is a distance
compared with its threshold).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import mannwhitneyu, ttest_ind

from monitor.drift.stattests.chi2 import chi2_homogeneity
from monitor.drift.stattests.ks import ks_test
from monitor.drift.stattests.psi import psi_from_counts
from monitor.drift.stattests.wasserstein import normalised_wasserstein

if TYPE_CHECKING:
    from monitor.drift.columns import SortedColumn
    from monitor.drift.profile import NumericProfile


@dataclass(frozen=True)
class Outcome:
    """What a test returns: its statistic (or distance) and its p-value when it has one."""

    statistic: float
    p_value: float | None = None


@dataclass(frozen=True)
class CategoryTable:
    """Reference and current counts aligned on the union of categories (reference ones first)."""

    categories: list[str]
    reference: np.ndarray
    current: np.ndarray


@dataclass(frozen=True)
class StatTest:
    name: str
    display_name: str
    column_types: tuple[str, ...]
    default_threshold: float | None  # None: a p-value test compared with alpha
    has_pvalue: bool
    func: Callable[..., Outcome]


def _ks(ref: NumericProfile, cur: SortedColumn) -> Outcome:
    statistic, p_value = ks_test(ref.ks_index, cur.finite)
    return Outcome(statistic, p_value)


def _psi(ref: NumericProfile, cur: SortedColumn) -> Outcome:
    return Outcome(psi_from_counts(ref.bin_counts, cur.bin_counts(ref.bin_edges)))


def _wasserstein(ref: NumericProfile, cur: SortedColumn) -> Outcome:
    return Outcome(normalised_wasserstein(ref.sorted_values, cur.finite, ref.std))


def _mannwhitney(ref: NumericProfile, cur: SortedColumn) -> Outcome:
    result = mannwhitneyu(ref.sorted_values, cur.finite, alternative="two-sided", method="auto")
    return Outcome(float(result.statistic), float(result.pvalue))


def _welch_t(ref: NumericProfile, cur: SortedColumn) -> Outcome:
    """Welch's t-test on the means (scipy's ``ttest_ind(equal_var=False)``); constant samples with
    equal means are no evidence (p = 1), different constants are (p = 0)."""
    if cur.finite.size < 2 or ref.sorted_values.size < 2:
        return Outcome(0.0, 1.0)
    result = ttest_ind(ref.sorted_values, cur.finite, equal_var=False)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    if np.isnan(p_value):
        same = bool(np.isclose(ref.mean, float(cur.finite.mean())))
        return Outcome(0.0 if same else float("inf"), 1.0 if same else 0.0)
    return Outcome(statistic, p_value)


def _chi2(table: CategoryTable) -> Outcome:
    statistic, p_value = chi2_homogeneity(table.reference, table.current)
    return Outcome(statistic, p_value)


REGISTRY: dict[str, StatTest] = {
    t.name: t
    for t in (
        StatTest("ks", "Kolmogorov-Smirnov (two-sample)", ("numeric",), None, True, _ks),
        StatTest("psi", "Population stability index", ("numeric",), 0.2, False, _psi),
        StatTest("wasserstein", "Wasserstein / reference std", ("numeric",), 0.1, False, _wasserstein),
        StatTest("mannwhitney", "Mann-Whitney U (rank test)", ("numeric",), None, True, _mannwhitney),
        StatTest("welch_t", "Welch t-test (means)", ("numeric",), None, True, _welch_t),
        StatTest("chi2", "Chi-square homogeneity", ("categorical",), None, True, _chi2),
    )
}


def get_test(name: str) -> StatTest:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown drift test {name!r}; choose one of {', '.join(REGISTRY)}") from None


def check_names(names: Iterable[str], column_type: str) -> None:
    """Refuse unknown tests and tests that do not apply to the column type, naming the valid ones."""
    for name in names:
        test = get_test(name)
        if column_type not in test.column_types:
            valid = [t.name for t in REGISTRY.values() if column_type in t.column_types]
            raise ValueError(
                f"test {name!r} does not apply to {column_type} columns; use one of {', '.join(valid)}"
            )


def run_test(test: StatTest, *args: Any) -> Outcome:
    return test.func(*args)
