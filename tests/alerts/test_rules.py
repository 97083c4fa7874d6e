"""Rules: which evaluations are bad for which alert, the labels that make an identity, the wording."""

from __future__ import annotations

from types import SimpleNamespace

from monitor.alerts.rules import RulePolicy, alert_labels, evaluate_rules, fingerprint
from tests.alerts.conftest import verdict


def evaluation(kind: str = "clean", **fields):
    return SimpleNamespace(id=7, model_name="lasso", model_version="3", batch_id="b-1",
                           **verdict(kind, **fields))


def signals(kind: str = "clean", policy: RulePolicy | None = None, **fields) -> dict[str, object]:
    return {s.alertname: s for s in evaluate_rules(evaluation(kind, **fields), policy or RulePolicy())}


def test_fingerprint_is_stable_and_ignores_label_order():
    labels = alert_labels("data_drift", "lasso", "3")
    assert fingerprint(labels) == fingerprint(dict(reversed(list(labels.items()))))
    assert len(fingerprint(labels)) == 16
    assert fingerprint(labels) != fingerprint(alert_labels("data_drift", "lasso", "4"))


def test_labels_carry_identity_only():
    assert alert_labels("data_drift", "lasso", "3") == {
        "alertname": "data_drift", "model": "lasso", "version": "3", "severity": "warning",
        "service": "driftline-monitor"}


def test_data_drift_summary_says_what_moved_and_by_how_much():
    signal = signals("data_drift")["data_drift"]
    assert signal.bad
    assert "x0 shifted: KS 0.62 (p=1e-12), mean 50.1 → 75.3" in signal.summary
    assert signal.details == {"drifted_features": "x0"}


def test_clean_batch_is_clean_for_every_rule():
    found = signals("clean")
    assert set(found) == {"data_drift", "concept_drift", "performance_degradation", "data_quality",
                          "monitor_failure"}
    assert not any(s.bad for s in found.values())


def test_performance_degradation_uses_the_configured_ratio():
    assert signals("degraded")["performance_degradation"].bad  # MSE ×2.0 ≥ 1.5
    assert not signals("degraded", RulePolicy(performance_ratio=2.5))["performance_degradation"].bad
    assert "MSE 1 → 2 (×2.00" in signals("degraded")["performance_degradation"].summary


def test_rejected_batch_is_a_data_quality_alert_and_says_nothing_about_drift():
    found = signals("rejected")
    assert found["data_quality"].bad and "column x1 missing" in found["data_quality"].summary
    assert "data_drift" not in found and "performance_degradation" not in found
    assert not found["monitor_failure"].bad


def test_dirty_batch_names_the_failing_columns():
    found = signals(report={"quality_failed": True, "quality": {"x1": {"issues": ["missing_share"]}}})
    assert found["data_quality"].bad and "x1: missing_share" in found["data_quality"].summary


def test_failed_evaluation_counts_only_towards_monitor_failure():
    found = signals("failed")
    assert set(found) == {"monitor_failure"} and found["monitor_failure"].bad
