"""Alert rules: each turns one evaluation into a per-rule signal (bad, clean, or no opinion).

Pure functions on an evaluation-like object (anything with the attributes of
``monitor.models.Evaluation``); no database, no clock. A rule answers ``None`` when the
evaluation says nothing about it (a failed evaluation is neither drifted nor clean), so an
alert's streaks only move on evaluations that actually tested its condition.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

SERVICE = "driftline-monitor"
RULES = ("data_drift", "concept_drift", "performance_degradation", "data_quality", "monitor_failure",
         "estimated_performance_degradation")
SEVERITY = {
    "data_drift": "warning",
    "concept_drift": "critical",
    "performance_degradation": "critical",
    # From the label-free estimate of a batch whose labels have not come (monitor/estimation.py):
    # a warning, settled (resolved, and confirmed or not) when the labels arrive.
    "estimated_performance_degradation": "warning",
    "data_quality": "warning",
    "monitor_failure": "critical",
    "dependency_down": "critical",  # from probes (monitor.alerts.dependency), not from evaluations
    # From the closed loop (monitor/loop_alerts.py), not from evaluations' rules:
    "challenger_ready": "info",
    "champion_rolled_back": "critical",
    "retraining_failed": "warning",
    "promotion_blocked": "warning",
}
MAX_FEATURES_IN_SUMMARY = 5


class EvaluationLike(Protocol):
    id: int
    model_name: str
    model_version: str
    status: str
    error: str | None
    data_drift: bool | None
    concept_drift: bool | None
    prediction_drift: bool | None
    drifted_features: list[str] | None
    n_rows: int | None
    mse: float | None
    mae: float | None
    baseline_mse: float | None
    baseline_mae: float | None
    report: dict[str, Any] | None
    batch_id: str | None
    mlflow_run_id: str | None


@dataclass(frozen=True)
class RulePolicy:
    """What counts as bad. ``performance_ratio``: batch error / baseline error at or above which the
    model is degraded (checked for MSE and MAE)."""

    performance_ratio: float = 1.5


@dataclass(frozen=True)
class Signal:
    """One rule's reading of one evaluation."""

    alertname: str
    bad: bool
    summary: str
    details: dict[str, str] = field(default_factory=dict)  # extra annotations (drifted_features, …)

    @property
    def severity(self) -> str:
        return SEVERITY[self.alertname]


def alert_labels(alertname: str, model: str, version: str) -> dict[str, str]:
    """The identity of an alert. Drifted features, scores and links are annotations, never labels."""
    return {"alertname": alertname, "model": model, "version": str(version),
            "severity": SEVERITY[alertname], "service": SERVICE}


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable hash of the sorted label set (sha256 hex, first 16 characters)."""
    canonical = json.dumps(sorted((str(k), str(v)) for k, v in labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def evaluate_rules(evaluation: EvaluationLike, policy: RulePolicy = RulePolicy()) -> list[Signal]:
    """All signals one evaluation gives (rules without an opinion are left out)."""
    signals = [
        _data_drift(evaluation),
        _concept_drift(evaluation),
        _performance(evaluation, policy),
        _data_quality(evaluation),
        _monitor_failure(evaluation),
        estimated_performance(evaluation, policy),
    ]
    return [s for s in signals if s is not None]


# --- the rules -------------------------------------------------------------------------------------

def _ok(evaluation: EvaluationLike) -> bool:
    return evaluation.status == "ok"


def _data_drift(ev: EvaluationLike) -> Signal | None:
    if not _ok(ev) or ev.data_drift is None:
        return None
    features = list(ev.drifted_features or [])
    if not ev.data_drift:
        return Signal("data_drift", False, f"{ev.model_name} v{ev.model_version}: no data drift")
    moved = [describe_feature(ev.report, name) for name in features[:MAX_FEATURES_IN_SUMMARY]]
    more = len(features) - MAX_FEATURES_IN_SUMMARY
    text = "; ".join(moved) if moved else "input distribution shifted"
    if more > 0:
        text += f"; and {more} more"
    summary = f"Data drift on {ev.model_name} v{ev.model_version}: {text}"
    if ev.prediction_drift:
        summary += "; predictions shifted too"
    return Signal("data_drift", True, summary, {"drifted_features": ", ".join(features)})


def _concept_drift(ev: EvaluationLike) -> Signal | None:
    if not _ok(ev) or ev.concept_drift is None:
        return None
    if not ev.concept_drift:
        return Signal("concept_drift", False, f"{ev.model_name} v{ev.model_version}: no concept drift")
    parts = []
    concept = (ev.report or {}).get("concept") or {}
    for name, result in concept.items():
        if isinstance(result, Mapping) and (result.get("adjusted_drift") or result.get("drift")):
            on = result.get("target") if result.get("target") not in (None, "residuals") else "residuals"
            parts.append(f"{on} {_test_text(name, result)}")
    if ev.mse is not None and ev.baseline_mse:
        parts.append(f"MSE {_num(ev.baseline_mse)} → {_num(ev.mse)}")
    accuracy, baseline_accuracy = getattr(ev, "accuracy", None), getattr(ev, "baseline_accuracy", None)
    if accuracy is not None and baseline_accuracy is not None:
        parts.append(f"accuracy {_num(baseline_accuracy)} → {_num(accuracy)}")
    text = "; ".join(parts) if parts else "the relation between inputs and target changed"
    return Signal("concept_drift", True, f"Concept drift on {ev.model_name} v{ev.model_version}: {text}")


def _performance(ev: EvaluationLike, policy: RulePolicy) -> Signal | None:
    if not _ok(ev):
        return None
    ratios = {}
    accuracy, baseline_accuracy = getattr(ev, "accuracy", None), getattr(ev, "baseline_accuracy", None)
    error_rates = (None, None) if accuracy is None or baseline_accuracy is None else (
        1 - accuracy, 1 - baseline_accuracy)
    for metric, value, baseline in (("MSE", ev.mse, ev.baseline_mse), ("MAE", ev.mae, ev.baseline_mae),
                                    ("error rate", *error_rates)):
        if value is not None and baseline is not None and baseline > 0 and math.isfinite(value):
            ratios[metric] = (value / baseline, baseline, value)
    if not ratios:
        return None
    worse = {m: r for m, r in ratios.items() if r[0] >= policy.performance_ratio}
    if not worse:
        return Signal("performance_degradation", False,
                      f"{ev.model_name} v{ev.model_version}: errors at baseline")
    text = "; ".join(f"{m} {_num(b)} → {_num(v)} (×{r:.2f}, limit ×{policy.performance_ratio:g})"
                     for m, (r, b, v) in worse.items())
    return Signal("performance_degradation", True,
                  f"Performance degraded on {ev.model_name} v{ev.model_version}: {text}")


def estimated_performance(ev: EvaluationLike, policy: RulePolicy) -> Signal | None:
    """The estimate of a batch still waiting for its labels against the reference's figure: for
    regression estimated MSE / baseline MSE, for classifiers estimated error rate / baseline error rate."""
    estimate = getattr(ev, "estimate", None)
    if not _ok(ev) or getattr(ev, "labels", None) != "pending" or not isinstance(estimate, Mapping):
        return None
    primary = estimate.get("primary")
    block = (estimate.get("metrics") or {}).get(primary) or {}
    baseline = (estimate.get("baseline") or {}).get(primary)
    value = block.get("estimate")
    if not all(isinstance(v, int | float) for v in (value, baseline)):
        return None
    if primary == "accuracy":
        name, value, baseline = "error rate", 1 - value, 1 - baseline
        lower, upper = 1 - block.get("upper", value), 1 - block.get("lower", value)
    else:
        name, lower, upper = primary.upper(), block.get("lower", value), block.get("upper", value)
    if not baseline or baseline <= 0:
        return None
    ratio = value / baseline
    interval = f"{_num(lower)}–{_num(upper)}, {round(100 * float(estimate.get('confidence') or 0.9))} %"
    text = (f"estimated {name} {_num(value)} ({interval} interval) against {_num(baseline)} on the "
            f"reference (×{ratio:.2f}, limit ×{policy.performance_ratio:g}); labels not in yet")
    if ratio < policy.performance_ratio:
        return Signal("estimated_performance_degradation", False,
                      f"{ev.model_name} v{ev.model_version}: {text}")
    return Signal("estimated_performance_degradation", True,
                  f"Estimated performance degradation on {ev.model_name} v{ev.model_version}: {text}",
                  {"estimated": _num(value), "interval": interval})


def _data_quality(ev: EvaluationLike) -> Signal | None:
    report = ev.report or {}
    if ev.status == "rejected":
        reason = ev.error or report.get("reason") or report.get("error") or "batch rejected"
        return Signal("data_quality", True, f"Batch {ev.batch_id} for {ev.model_name} "
                                            f"v{ev.model_version} rejected: {_short(reason)}")
    if not _ok(ev):
        return None
    if not report.get("quality_failed"):
        return Signal("data_quality", False, f"{ev.model_name} v{ev.model_version}: batch quality ok")
    issues = []
    for column, figures in (report.get("quality") or {}).items():
        if isinstance(figures, Mapping) and figures.get("issues"):
            issues.append(f"{column}: {', '.join(map(str, figures['issues']))}")
    text = "; ".join(issues[:MAX_FEATURES_IN_SUMMARY]) or "quality checks failed"
    return Signal("data_quality", True,
                  f"Dirty batch {ev.batch_id} for {ev.model_name} v{ev.model_version}: {text}")


def _monitor_failure(ev: EvaluationLike) -> Signal | None:
    if ev.status == "failed":
        error = _short(ev.error or "unknown error")
        return Signal("monitor_failure", True,
                      f"Evaluation of {ev.model_name} v{ev.model_version} failed: {error}")
    return Signal("monitor_failure", False, f"{ev.model_name} v{ev.model_version}: evaluation ran")


# --- wording ----------------------------------------------------------------------------------------

def describe_feature(report: Mapping[str, Any] | None, name: str) -> str:
    """'x0 shifted: KS 0.62 (p=1e-12), mean 50.1 → 75.3' from whatever the report holds."""
    report = report or {}
    tests = (report.get("features") or {}).get(name) or {}
    deciding = [(t, r) for t, r in tests.items()
                if isinstance(r, Mapping) and (r.get("adjusted_drift") or r.get("drift"))]
    chosen = deciding or [(t, r) for t, r in tests.items() if isinstance(r, Mapping)]
    parts = [_test_text(t, r) for t, r in chosen[:2]]
    means = _means(report, name)
    if means:
        parts.append(f"mean {_num(means[0])} → {_num(means[1])}")
    return f"{name} shifted: {', '.join(parts)}" if parts else f"{name} shifted"


def _means(report: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    for block in ((report.get("quality") or {}).get(name), (report.get("stats") or {}).get(name)):
        if isinstance(block, Mapping):
            ref = block.get("reference_mean")
            cur = block.get("mean", block.get("current_mean"))
            if isinstance(ref, int | float) and isinstance(cur, int | float):
                return float(ref), float(cur)
    return None


def _test_text(name: str, result: Mapping[str, Any]) -> str:
    label = str(result.get("test") or name)
    label = label.upper() if len(label) <= 4 else label
    text = f"{label} {_num(result.get('statistic'))}"
    p = result.get("p_value")
    if isinstance(p, int | float):
        text += f" (p={p:.2g})"
    return text


def _num(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
