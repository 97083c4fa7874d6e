"""The result of scoring one batch: per-test results, dataset-level verdicts, performance and quality.

Plain dataclasses; ``to_dict`` is JSON-safe (NaN and infinities become None, numpy scalars become
Python numbers) and ``from_dict`` rebuilds an equal report, so reports can be stored and shown later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

import numpy as np

DriftKind = Literal["data", "concept", "prediction"]


@dataclass
class TestResult:
    """One test on one column (or on the residuals / predictions / error ratio).

    ``drift`` is the raw decision (p-value below the threshold, or distance at or above it);
    ``adjusted_drift`` the decision after multiple-testing correction (distances: the raw decision);
    ``decides`` says whether this result counts towards the verdict (distances only count when the
    configuration or the sample sizes allow, see ``DriftConfig.distances_decide``).
    """

    __test__ = False  # not a pytest test class despite its name

    test: str
    kind: DriftKind
    target: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drift: bool | None
    adjusted_p_value: float | None = None
    adjusted_drift: bool | None = None
    decides: bool = True
    note: str | None = None

    @property
    def counts(self) -> bool:
        """True when this result makes its verdict positive."""
        return bool(self.decides and self.adjusted_drift)


@dataclass
class Verdict:
    """A dataset-level verdict: which kind, whether detected, which tests and columns drove it."""

    kind: str
    detected: bool
    drivers: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)


@dataclass
class DriftReport:
    data_drift: bool
    concept_drift: bool
    prediction_drift: bool
    quality_failed: bool
    drifted_features: list[str]
    features: dict[str, dict[str, TestResult]]
    concept: dict[str, TestResult]
    prediction: dict[str, TestResult]
    performance: dict[str, float | int | None]
    quality: dict[str, Any]
    verdicts: dict[str, Verdict]
    sample_sizes: dict[str, int]
    settings: dict[str, Any]
    # per numeric feature, and "predictions" / "residuals" when given: {"edges": [...] (len(counts) + 1
    # floats), "reference_counts": [...], "current_counts": [...]} over the profile's PSI bins, for charts
    distributions: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # the joint test of all numeric inputs ({"energy_mean": ...}, target "inputs") when it ran (small batches)
    joint: dict[str, TestResult] = field(default_factory=dict)

    @property
    def alert(self) -> bool:
        """Anything worth telling someone: any drift or a data-quality failure."""
        return self.data_drift or self.concept_drift or self.prediction_drift or self.quality_failed

    def all_tests(self) -> list[TestResult]:
        tests = [r for per_test in self.features.values() for r in per_test.values()]
        tests += list(self.joint.values())
        return tests + list(self.concept.values()) + list(self.prediction.values())

    def summary(self) -> str:
        """A few human-readable lines for logs and alerts."""
        lines = []
        for name, verdict in self.verdicts.items():
            state = "DETECTED" if verdict.detected else "ok"
            why = f" ({', '.join(verdict.drivers)})" if verdict.drivers else ""
            lines.append(f"{name}: {state}{why}")
        sizes = ", ".join(f"{k} {v}" for k, v in self.sample_sizes.items())
        lines.append(f"rows: {sizes}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """``json_safe(asdict(self))`` in one pass (asdict deep-copies every leaf first: that was a
        tenth of a 100-row push's CPU)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        def results(block: Mapping[str, Any]) -> dict[str, TestResult]:
            return {name: TestResult(**item) for name, item in block.items()}

        return cls(
            data_drift=bool(data["data_drift"]),
            concept_drift=bool(data["concept_drift"]),
            prediction_drift=bool(data["prediction_drift"]),
            quality_failed=bool(data["quality_failed"]),
            drifted_features=list(data["drifted_features"]),
            features={col: results(block) for col, block in data["features"].items()},
            concept=results(data["concept"]),
            prediction=results(data["prediction"]),
            performance=dict(data["performance"]),
            quality=dict(data["quality"]),
            verdicts={k: Verdict(**v) for k, v in data["verdicts"].items()},
            sample_sizes={k: int(v) for k, v in data["sample_sizes"].items()},
            settings=dict(data["settings"]),
            distributions={
                name: {key: list(values) for key, values in bins.items()}
                for name, bins in (data.get("distributions") or {}).items()
            },
            joint=results(data.get("joint") or {}),
        )


def _plain(value: Any) -> Any:
    """``json_safe`` of a value that may hold dataclasses, as ``asdict`` would have turned them."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    if kind is list:
        return [_plain(v) for v in value]
    if is_dataclass(kind):
        names = _FIELDS.get(kind)
        if names is None:
            names = _FIELDS[kind] = tuple(f.name for f in fields(kind))
        return {name: _plain(getattr(value, name)) for name in names}
    return json_safe(value)


_FIELDS: dict[type, tuple[str, ...]] = {}


def json_safe(value: Any) -> Any:
    """Recursively turn numpy scalars into Python ones and NaN/inf into None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value
