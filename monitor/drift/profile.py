"""The reference profile: everything scoring needs from the reference data, computed once per model version.

Plain data (arrays, numbers, strings): ``to_dict``/``from_dict`` for JSON and ``to_bytes``/``from_bytes``
for a compact npz file with a JSON header (no pickle), so a monitor can cache it beside a model version
and reload it without the reference frame.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from monitor.drift.columns import (
    ColumnKind,
    SortedColumn,
    category_counts,
    column_kind,
    numeric_array,
    sort_numeric,
)
from monitor.drift.stattests.ks import KsIndex, build_ks_index
from monitor.drift.stattests.psi import bin_counts, quantile_edges

FORMAT = "driftline.reference-profile"
FORMAT_VERSION = 1


@dataclass
class NumericProfile:
    """One numeric column (or the predictions, or the residuals) of the reference."""

    name: str
    sorted_values: np.ndarray  # finite values, ascending
    n_rows: int
    n_missing: int
    n_infinite: int
    bin_edges: np.ndarray
    bin_counts: np.ndarray
    dtype: str = "float64"
    kind: ColumnKind = field(default="numeric", init=False)

    @property
    def n_finite(self) -> int:
        return int(self.sorted_values.size)

    @cached_property
    def mean(self) -> float:
        return float(self.sorted_values.mean())

    @cached_property
    def std(self) -> float:
        return float(self.sorted_values.std())

    @property
    def min(self) -> float:
        return float(self.sorted_values[0])

    @property
    def max(self) -> float:
        return float(self.sorted_values[-1])

    @cached_property
    def ks_index(self) -> KsIndex:
        return build_ks_index(self.sorted_values)

    @classmethod
    def from_sorted(
        cls, name: str, column: SortedColumn, bins: int, dtype: str = "float64"
    ) -> NumericProfile:
        if column.finite.size == 0:
            raise ValueError(
                f"column {name!r} has no finite values in the reference ({column.n_rows} rows, "
                f"{column.n_missing} missing, {column.n_infinite} infinite); "
                "drop it or fix the reference data"
            )
        values = np.ascontiguousarray(column.finite)
        if values.base is not None and values.size != column.n_rows:
            values = values.copy()  # do not keep the NaN/inf tail of the sort buffer alive
        edges = quantile_edges(values, bins)
        return cls(
            name=name,
            sorted_values=values,
            n_rows=column.n_rows,
            n_missing=column.n_missing,
            n_infinite=column.n_infinite,
            bin_edges=edges,
            bin_counts=bin_counts(values, edges),
            dtype=dtype,
        )

    def header(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "n_rows": self.n_rows,
            "n_missing": self.n_missing,
            "n_infinite": self.n_infinite,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "sorted_values": self.sorted_values,
            "bin_edges": self.bin_edges,
            "bin_counts": self.bin_counts,
        }

    @classmethod
    def from_parts(cls, header: Mapping[str, Any], arrays: Mapping[str, Any]) -> NumericProfile:
        return cls(
            name=header["name"],
            sorted_values=np.asarray(arrays["sorted_values"], dtype=np.float64),
            n_rows=int(header["n_rows"]),
            n_missing=int(header["n_missing"]),
            n_infinite=int(header["n_infinite"]),
            bin_edges=np.asarray(arrays["bin_edges"], dtype=np.float64),
            bin_counts=np.asarray(arrays["bin_counts"], dtype=np.int64),
            dtype=header.get("dtype", "float64"),
        )


@dataclass
class CategoricalProfile:
    """One categorical column of the reference: category counts (categories as strings)."""

    name: str
    categories: list[str]
    counts: np.ndarray
    n_rows: int
    n_missing: int
    dtype: str = "object"
    kind: ColumnKind = field(default="categorical", init=False)

    @property
    def n_present(self) -> int:
        return int(self.counts.sum())

    def header(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "n_rows": self.n_rows,
            "n_missing": self.n_missing,
            "categories": list(self.categories),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    @classmethod
    def from_parts(cls, header: Mapping[str, Any], arrays: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            name=header["name"],
            categories=[str(c) for c in header["categories"]],
            counts=np.asarray(arrays["counts"], dtype=np.int64),
            n_rows=int(header["n_rows"]),
            n_missing=int(header["n_missing"]),
            dtype=header.get("dtype", "object"),
        )


@dataclass
class JointProfile:
    """Reference rows of the numeric features, for the joint (multivariate) test of small batches.

    Only rows where every listed column is finite; kept only when the reference is small enough for
    the permutation test (``DriftConfig.joint_max_rows``), so large profiles stay as small as before.
    """

    columns: list[str]
    values: np.ndarray  # (rows, len(columns)) float64

    def header(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    @classmethod
    def from_parts(cls, header: Mapping[str, Any], values: Any) -> JointProfile:
        columns = [str(c) for c in header["columns"]]
        arr = np.asarray(values, dtype=np.float64).reshape(-1, len(columns))
        return cls(columns=columns, values=arr)


FeatureProfile = NumericProfile | CategoricalProfile
_ARRAY_KEYS = {"numeric": ("sorted_values", "bin_edges", "bin_counts"), "categorical": ("counts",)}


def _part_from(header: Mapping[str, Any], arrays: Mapping[str, Any]) -> FeatureProfile:
    if header["kind"] == "numeric":
        return NumericProfile.from_parts(header, arrays)
    if header["kind"] == "categorical":
        return CategoricalProfile.from_parts(header, arrays)
    raise ValueError(f"unknown column kind {header['kind']!r} in profile")


@dataclass
class ReferenceProfile:
    """Per feature: sorted values, quantile bins, missing counts or category counts; baselines of the model.

    ``predictions`` and ``residuals`` (labels - predictions) are present when the detector was fitted
    with them; ``baseline_mse``/``baseline_mae`` come from the residuals.
    """

    features: dict[str, FeatureProfile]
    n_rows: int
    psi_bins: int
    predictions: NumericProfile | None = None
    residuals: NumericProfile | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    joint: JointProfile | None = None
    classification: Any = None  # a ClassificationBaseline for classifiers (monitor.drift.classification)

    @property
    def baseline_mse(self) -> float | None:
        return None if self.residuals is None else float(np.mean(self.residuals.sorted_values**2))

    @property
    def baseline_mae(self) -> float | None:
        return None if self.residuals is None else float(np.mean(np.abs(self.residuals.sorted_values)))

    # --- serialisation -------------------------------------------------------------------------------
    def _parts(self) -> list[tuple[str, FeatureProfile]]:
        parts: list[tuple[str, FeatureProfile]] = [("feature", f) for f in self.features.values()]
        if self.predictions is not None:
            parts.append(("predictions", self.predictions))
        if self.residuals is not None:
            parts.append(("residuals", self.residuals))
        if self.classification is not None:
            parts += self.classification.parts()
        return parts

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_rows": self.n_rows,
            "psi_bins": self.psi_bins,
            "metadata": self.metadata,
            **({"classification": self.classification.header()} if self.classification is not None else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (arrays as lists of finite floats / ints)."""
        data = self._header()
        data["parts"] = [
            {"role": role, **part.header(), **{k: v.tolist() for k, v in part.arrays().items()}}
            for role, part in self._parts()
        ]
        if self.joint is not None:
            data["joint"] = {**self.joint.header(), "values": self.joint.values.tolist()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        _check_header(data)
        features: dict[str, FeatureProfile] = {}
        baselines: dict[str, Any] = {}
        for item in data["parts"]:
            part = _part_from(item, item)
            if item["role"] == "feature":
                features[part.name] = part
            else:
                baselines[item["role"]] = part
        classification = None
        if data.get("classification"):
            from monitor.drift.classification import ClassificationBaseline

            classification = ClassificationBaseline.from_parts(data["classification"], baselines)
        return cls(
            features=features,
            n_rows=int(data["n_rows"]),
            psi_bins=int(data["psi_bins"]),
            predictions=baselines.get("predictions"),
            residuals=baselines.get("residuals"),
            metadata=dict(data.get("metadata") or {}),
            joint=JointProfile.from_parts(data["joint"], data["joint"]["values"])
            if data.get("joint")
            else None,
            classification=classification,
        )

    def to_bytes(self) -> bytes:
        """npz archive: a JSON header (uint8 array) plus one array per profile array; loads without pickle."""
        header = self._header()
        arrays: dict[str, np.ndarray] = {}
        header["parts"] = []
        for i, (role, part) in enumerate(self._parts()):
            header["parts"].append({"role": role, **part.header()})
            for key, arr in part.arrays().items():
                arrays[f"p{i}.{key}"] = arr
        if self.joint is not None:
            header["joint"] = self.joint.header()
            arrays["joint.values"] = self.joint.values
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> ReferenceProfile:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            header = json.loads(archive["header"].tobytes().decode("utf-8"))
            _check_header(header)
            parts = []
            for i, item in enumerate(header["parts"]):
                arrays = {key: archive[f"p{i}.{key}"] for key in _ARRAY_KEYS[item["kind"]]}
                parts.append({**item, **arrays})
            if header.get("joint"):
                header["joint"]["values"] = archive["joint.values"]
        return cls.from_dict({**header, "parts": parts})


def _check_header(data: Mapping[str, Any]) -> None:
    if data.get("format") != FORMAT:
        raise ValueError(f"not a reference profile (format {data.get('format')!r}, expected {FORMAT!r})")
    if int(data.get("version", -1)) > FORMAT_VERSION:
        raise ValueError(
            f"profile format version {data.get('version')} is newer than this engine ({FORMAT_VERSION}); "
            "upgrade driftline or rebuild the profile"
        )


def profile_joint(reference: pd.DataFrame, columns: list[str], max_rows: int) -> JointProfile | None:
    """Complete rows of at least two numeric columns, or None when there are fewer or too many rows."""
    if len(columns) < 2 or reference.shape[0] >= max_rows:
        return None  # checked before stacking: a large reference is never copied
    values = np.column_stack([numeric_array(reference[c], f"column {c!r}") for c in columns])
    values = values[np.isfinite(values).all(axis=1)]
    if values.shape[0] < 2:
        return None
    return JointProfile(columns=[str(c) for c in columns], values=np.ascontiguousarray(values))


def profile_numeric(name: str, values: np.ndarray, bins: int, dtype: str = "float64") -> NumericProfile:
    return NumericProfile.from_sorted(name, sort_numeric(values), bins, dtype)


def profile_column(name: str, series: pd.Series, bins: int) -> FeatureProfile:
    """Profile one reference column by its kind."""
    if column_kind(series) == "numeric":
        return profile_numeric(name, numeric_array(series, f"column {name!r}"), bins, str(series.dtype))
    counts, n_missing = category_counts(series)
    if not counts:
        raise ValueError(
            f"column {name!r} has no values in the reference ({len(series)} rows, all missing); "
            "drop it or fix the reference data"
        )
    categories = sorted(counts)
    return CategoricalProfile(
        name=name,
        categories=categories,
        counts=np.array([counts[c] for c in categories], dtype=np.int64),
        n_rows=int(len(series)),
        n_missing=n_missing,
        dtype=str(series.dtype),
    )
