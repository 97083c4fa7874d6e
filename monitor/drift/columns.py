"""Turning frame columns into arrays the tests use: type detection, sorting, missing and infinite counts.

Kept apart so every entry point (fit, score, predictions, labels) applies the same rules: numbers
(any numeric dtype except bool) are numeric, everything else is categorical; NaN/None are missing;
+-inf are counted apart and never reach a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from monitor.drift.stattests.psi import bin_counts

ColumnKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class SortedColumn:
    """A numeric column sorted once: finite values (a view, ascending) and what was left out."""

    finite: np.ndarray
    n_rows: int
    n_missing: int
    n_infinite: int
    _bin_counts: dict[bytes, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def bin_counts(self, edges: np.ndarray) -> np.ndarray:
        """Counts of the finite values per bin of ``edges`` (see ``psi.bin_counts``), computed once per
        edges: PSI and the report's distributions share them."""
        key = edges.tobytes()
        counts = self._bin_counts.get(key)
        if counts is None:
            counts = self._bin_counts[key] = bin_counts(self.finite, edges)
        return counts


def column_kind(series: pd.Series) -> ColumnKind:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    return "categorical"


def numeric_array(values: object, name: str) -> np.ndarray:
    """float64 values of a column or array-like, without copying float64 input; NaN marks missing."""
    if isinstance(values, pd.Series):
        if values.dtype == np.float64:
            return values.to_numpy()
        if column_kind(values) != "numeric" and not values.isna().all():
            raise ValueError(
                f"{name} must be numeric, got dtype {values.dtype}; convert it with pd.to_numeric first"
            )
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    try:
        return pd.to_numeric(pd.Series(arr), errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}; convert it first") from exc


def sort_numeric(values: np.ndarray) -> SortedColumn:
    """Sort once (NaN sorts last, -inf first, +inf before NaN) and slice out the finite part."""
    s = np.sort(values)
    n = int(s.size)
    n_not_nan = int(np.searchsorted(s, np.nan, side="left"))
    lo = int(np.searchsorted(s[:n_not_nan], -np.inf, side="right"))
    hi = int(np.searchsorted(s[:n_not_nan], np.inf, side="left"))
    return SortedColumn(finite=s[lo:hi], n_rows=n, n_missing=n - n_not_nan, n_infinite=lo + n_not_nan - hi)


def category_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Counts per category (as strings, so 1 and "1" are one category) and the number of missing values."""
    missing = series.isna()
    n_missing = int(missing.sum())
    present = series[~missing] if n_missing else series
    counts = present.astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in counts.items()}, n_missing
