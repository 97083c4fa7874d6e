"""Delivery metrics against a scenario computed by hand (all times UTC, March 2024).

Model ``m``: v1 promoted 03-01, v2 03-08, v2 rolled back to v1 03-10, v3 03-20, v4 03-27; now is 03-29.
Training runs started 12 h, 24 h, 6 h and 24 h before v1..v4 were promoted.
Alerts: data_drift on v2 from 03-09 (resolved 03-11, but the rollback on 03-10 restored service first);
concept_drift on v3 from 03-25 06:00 h; performance_degradation on v1 from 03-18, still open;
data_quality on v4 (not a failure signal); data_drift on another model (ignored).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.delivery_metrics import champion_changes, delivery_metrics, humanize

NOW = datetime(2024, 3, 29, tzinfo=UTC)
HISTORY = [
    {"alias": "champion", "version": "1", "at": "2024-03-01T00:00:00+00:00", "by": "ci", "reason": "first"},
    {"alias": "champion", "version": "2", "at": "2024-03-08T00:00:00+00:00", "by": "ci", "reason": "better"},
    {
        "alias": "previous",
        "version": "1",
        "at": "2024-03-08T00:00:00+00:00",
        "by": "ci",
        "reason": "was champion until v2 replaced it",
    },
    {
        "alias": "champion",
        "version": "1",
        "at": "2024-03-10T00:00:00+00:00",
        "by": "oncall",
        "reason": "drift",
    },
    {
        "alias": "previous",
        "version": "2",
        "at": "2024-03-10T00:00:01+00:00",
        "by": "oncall",
        "reason": "rolled back from champion to v1",
    },
    {
        "alias": "champion",
        "version": "3",
        "at": "2024-03-20T00:00:00+00:00",
        "by": "ci",
        "reason": "retrained",
    },
    {
        "alias": "previous",
        "version": "1",
        "at": "2024-03-20T00:00:00+00:00",
        "by": "ci",
        "reason": "was champion",
    },
    {"alias": "champion", "version": "4", "at": "2024-03-27T00:00:00Z", "by": "ci", "reason": "retrained"},
]
RUN_STARTS = {
    "1": "2024-02-29T12:00:00+00:00",
    "2": "2024-03-07T00:00:00+00:00",
    "3": datetime(2024, 3, 19, 18, tzinfo=UTC),
    "4": "2024-03-26T00:00:00+00:00",
}
ALERTS = [
    {
        "name": "data_drift",
        "model": "m",
        "version": "2",
        "starts_at": "2024-03-09T00:00:00+00:00",
        "ends_at": "2024-03-11T00:00:00+00:00",
    },
    {
        "name": "concept_drift",
        "model": "m",
        "version": "3",
        "starts_at": "2024-03-25T00:00:00+00:00",
        "ends_at": "2024-03-25T06:00:00+00:00",
    },
    {
        "name": "performance_degradation",
        "model": "m",
        "version": "1",
        "starts_at": "2024-03-18T00:00:00+00:00",
        "ends_at": None,
    },
    {
        "name": "data_quality",
        "model": "m",
        "version": "4",
        "starts_at": "2024-03-27T12:00:00+00:00",
        "ends_at": None,
    },
    {"name": "data_drift", "model": "other", "starts_at": "2024-03-02T00:00:00+00:00", "ends_at": None},
]


@pytest.fixture
def metrics():
    return delivery_metrics(HISTORY, ALERTS, now=NOW, run_starts=RUN_STARTS, model="m")


def test_the_rollback_is_recognised_from_the_adjacent_previous_entry():
    changes = champion_changes(HISTORY)
    assert [(c.version, c.rollback) for c in changes] == [
        ("1", False),
        ("2", False),
        ("1", True),
        ("3", False),
        ("4", False),
    ]


def test_deployment_frequency_counts_champion_changes_in_the_last_four_weeks(metrics):
    # 03-01 00:00 is exactly 28 days before now: outside the window; v2, rollback, v3, v4 are inside.
    assert metrics.champion_changes == 5
    assert metrics.changes_in_window == 4
    assert metrics.deployment_frequency_per_week == pytest.approx(1.0)


def test_lead_time_is_run_start_to_promotion_without_rollbacks(metrics):
    assert sorted(metrics.lead_times) == [timedelta(hours=h) for h in (6, 12, 24, 24)]
    assert metrics.lead_time_median == timedelta(hours=18)


def test_change_failure_rate_counts_rollbacks_and_drift_or_degradation_alerts_within_seven_days(metrics):
    # v1: no alert on v1 before v2 replaced it; v2: alerted and rolled back; v3: concept drift after 5 days;
    # v4: only a data-quality alert, which is not a failure signal.
    assert (metrics.failed_promotions, metrics.promotions_evaluated) == (2, 4)
    assert metrics.change_failure_rate == pytest.approx(0.5)
    assert metrics.rollbacks == 1


def test_time_to_restore_is_alert_start_to_resolution_or_rollback(metrics):
    # data_drift: 24 h to the rollback (before its own resolution); concept_drift: 6 h; degradation: open.
    assert sorted(metrics.restore_times) == [timedelta(hours=6), timedelta(hours=24)]
    assert metrics.time_to_restore_median == timedelta(hours=15)
    assert metrics.open_alerts == 1


def test_an_alert_after_the_seven_day_window_is_not_a_failure():
    late = [
        {"name": "concept_drift", "model": "m", "starts_at": "2024-03-28T00:00:00+00:00", "ends_at": None}
    ]
    history = [{"alias": "champion", "version": "7", "at": "2024-03-20T00:00:00+00:00"}]
    result = delivery_metrics(history, late, now=NOW, model="m")
    assert (result.failed_promotions, result.promotions_evaluated) == (0, 1)


def test_rollbacks_can_be_given_explicitly():
    history = [e for e in HISTORY if e["alias"] == "champion"]
    result = delivery_metrics(
        history, ALERTS, now=NOW, run_starts=RUN_STARTS, model="m", rollbacks=["2024-03-10T00:00:00Z"]
    )
    assert result.rollbacks == 1 and result.change_failure_rate == pytest.approx(0.5)


def test_no_promotions_means_no_rates():
    result = delivery_metrics([], [], now=NOW)
    assert result.change_failure_rate is None and result.lead_time_median is None
    assert result.deployment_frequency_per_week == 0.0
    assert humanize(None) == "—" and humanize(timedelta(hours=18)) == "18.0 h"


def test_an_alert_counts_against_the_version_it_names_even_in_the_second_of_the_next_move():
    # Alias-history times are whole seconds: v2's move is recorded at :05 though it happened after the alert.
    history = [
        {"alias": "champion", "version": "1", "at": "2024-03-20T10:00:00Z"},
        {"alias": "champion", "version": "2", "at": "2024-03-20T10:00:05Z"},
    ]
    alert = [
        {
            "name": "data_drift",
            "model": "m",
            "version": "1",
            "starts_at": "2024-03-20T10:00:05.500Z",
            "ends_at": None,
        }
    ]
    result = delivery_metrics(history, alert, now=NOW, model="m")
    assert (result.failed_promotions, result.promotions_evaluated) == (1, 2)


def test_the_monitors_automatic_promotion_and_rollback_count_as_a_deployment_and_a_failure():
    """The closed loop writes its moves with model_registry.aliases, like `promote` and `rollback`."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    history = [
        {"alias": "champion", "version": "1", "at": t0.isoformat(), "by": "ci", "reason": "train"},
        {"alias": "champion", "version": "2", "at": (t0 + timedelta(days=1)).isoformat(),
         "by": "driftline-monitor (auto promotion, decision 4)", "reason": "auto: challenger better"},
        {"alias": "previous", "version": "1", "at": (t0 + timedelta(days=1)).isoformat(),
         "by": "driftline-monitor (auto promotion, decision 4)", "reason": "was champion until v2"},
        {"alias": "champion", "version": "1", "at": (t0 + timedelta(days=2)).isoformat(),
         "by": "driftline-monitor (auto rollback, decision 5)", "reason": "auto: rollback"},
        {"alias": "previous", "version": "2", "at": (t0 + timedelta(days=2)).isoformat(),
         "by": "driftline-monitor (auto rollback, decision 5)",
         "reason": "rolled back from champion to v1"},
    ]
    result = delivery_metrics(history, [], now=t0 + timedelta(days=3))
    assert result.champion_changes == 3 and result.changes_in_window == 3
    assert (result.automatic_promotions, result.automatic_rollbacks, result.rollbacks) == (1, 1, 1)
    assert result.failed_promotions == 1  # v2, undone by the automatic rollback
    assert result.as_dict()["automatic_promotions"] == 1
