"""Data-quality checks per column: missing share, infinite values, out-of-range share, new categories.

Reported for every column on every batch. A column fails (and the batch's ``quality_failed`` verdict
is set) when it has no usable value at all, when its missing share grows by more than
``max_missing_share_increase`` over the reference, when it holds infinities the reference did not
have, when more than ``max_out_of_range_share`` of its values fall outside the reference [min, max]
(about 2 / (n_ref + 1) is expected without drift), or when the share of rows with categories never
seen in the reference exceeds ``max_new_category_share``. A failing column is never reported as
"no drift" silently: its tests carry a note and the quality verdict names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.drift.columns import SortedColumn
from monitor.drift.config import DriftConfig
from monitor.drift.profile import CategoricalProfile, NumericProfile

MAX_LISTED_CATEGORIES = 20


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def numeric_quality(ref: NumericProfile, cur: SortedColumn, config: DriftConfig) -> dict[str, Any]:
    """Quality figures of a numeric column from its sorted values (O(log n))."""
    finite = cur.finite
    below = int(np.searchsorted(finite, ref.min, side="left"))
    above = int(finite.size - np.searchsorted(finite, ref.max, side="right"))
    missing_share = _share(cur.n_missing, cur.n_rows)
    reference_missing_share = _share(ref.n_missing, ref.n_rows)
    infinite_share = _share(cur.n_infinite, cur.n_rows)
    out_of_range_share = _share(below + above, int(finite.size))
    issues = []
    if finite.size == 0:
        issues.append("no_finite_values")
    if missing_share > reference_missing_share + config.max_missing_share_increase:
        issues.append("missing_share")
    if cur.n_infinite and not ref.n_infinite:
        issues.append("infinite_values")
    if out_of_range_share > config.max_out_of_range_share:
        issues.append("out_of_range")
    return {
        "kind": "numeric",
        "rows": cur.n_rows,
        "missing_share": missing_share,
        "reference_missing_share": reference_missing_share,
        "infinite_share": infinite_share,
        "out_of_range_share": out_of_range_share,
        "below_reference_min": below,
        "above_reference_max": above,
        "issues": issues,
    }


def categorical_quality(
    ref: CategoricalProfile, counts: dict[str, int], n_missing: int, n_rows: int, config: DriftConfig
) -> dict[str, Any]:
    """Quality figures of a categorical column: missing share and categories unseen in the reference."""
    known = set(ref.categories)
    new = sorted((c for c in counts if c not in known), key=lambda c: -counts[c])
    n_present = n_rows - n_missing
    new_share = _share(sum(counts[c] for c in new), n_present)
    missing_share = _share(n_missing, n_rows)
    reference_missing_share = _share(ref.n_missing, ref.n_rows)
    issues = []
    if n_present == 0:
        issues.append("no_values")
    if missing_share > reference_missing_share + config.max_missing_share_increase:
        issues.append("missing_share")
    if new_share > config.max_new_category_share:
        issues.append("new_categories")
    return {
        "kind": "categorical",
        "rows": n_rows,
        "missing_share": missing_share,
        "reference_missing_share": reference_missing_share,
        "new_categories": new[:MAX_LISTED_CATEGORIES],
        "new_category_count": len(new),
        "new_category_share": new_share,
        "issues": issues,
    }


def missing_column_quality(n_rows: int) -> dict[str, Any]:
    """A batch column with no values at all (every row missing, whatever its dtype)."""
    return {"kind": "missing", "rows": n_rows, "missing_share": 1.0, "issues": ["no_values"]}
