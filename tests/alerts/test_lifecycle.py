"""Lifecycle: fire after K bad, resolve after M clean, repeat interval, silence hold-back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.lifecycle import LifecyclePolicy, firing_notice_due, observe, resolved_notice_due

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeAlert:
    alertname: str = "data_drift"
    state: str = "inactive"
    bad_streak: int = 0
    clean_streak: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    last_notified_at: datetime | None = None
    notified: bool = False


def test_fires_after_k_consecutive_bad_and_is_pending_before():
    alert, policy = FakeAlert(), LifecyclePolicy(fire_after=2)
    assert observe(alert, True, T0, policy) is None and alert.state == "pending"
    assert observe(alert, False, T0, policy) is None and alert.state == "inactive"
    assert observe(alert, True, T0, policy) is None
    assert observe(alert, True, T0, policy) == "fired" and alert.state == "firing"


def test_monitor_failure_uses_the_failure_threshold():
    alert, policy = FakeAlert(alertname="monitor_failure"), LifecyclePolicy(failure_threshold=3)
    assert [observe(alert, True, T0, policy) for _ in range(3)] == [None, None, "fired"]


def test_resolves_after_consecutive_clean_evaluations_only():
    alert, policy = FakeAlert(), LifecyclePolicy(resolve_after=2)
    observe(alert, True, T0, policy)
    alert.notified = True
    assert observe(alert, False, T0, policy) is None
    assert observe(alert, True, T0, policy) is None  # a bad one in between restarts the count
    assert observe(alert, False, T0, policy) is None
    transition = observe(alert, False, T0 + timedelta(minutes=1), policy)
    assert transition == "resolved" and alert.ends_at == T0 + timedelta(minutes=1)
    assert resolved_notice_due(alert, transition)


def test_repeat_interval_holds_back_renotification():
    alert, policy = FakeAlert(), LifecyclePolicy(repeat_interval=timedelta(hours=4))
    observe(alert, True, T0, policy)
    assert firing_notice_due(alert, T0, policy, silenced=False)
    alert.notified, alert.last_notified_at = True, T0
    assert not firing_notice_due(alert, T0 + timedelta(hours=3, minutes=59), policy, silenced=False)
    assert firing_notice_due(alert, T0 + timedelta(hours=4), policy, silenced=False)


def test_silenced_alert_is_not_notified_and_resolves_quietly():
    alert, policy = FakeAlert(), LifecyclePolicy(resolve_after=1)
    observe(alert, True, T0, policy)
    assert not firing_notice_due(alert, T0, policy, silenced=True)
    assert firing_notice_due(alert, T0 + timedelta(hours=1), policy, silenced=False)  # silence over
    assert not resolved_notice_due(alert, observe(alert, False, T0, policy))  # never notified


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError):
        LifecyclePolicy(fire_after=0)
