"""The life of one alert, modelled on Alertmanager: pending → firing → resolved, with streaks.

Pure: works on any object with the fields of ``monitor.alerts.models.Alert`` and takes ``now``.

- An alert fires after ``fire_after`` consecutive bad evaluations (K; ``monitor_failure`` uses the
  failure threshold N instead) and is ``pending`` before that.
- A firing alert resolves after ``resolve_after`` consecutive clean evaluations.
- A firing alert is notified once, then again only when ``repeat_interval`` has passed since the
  last notification; while a silence matches it nothing is notified, and the first tick after the
  silence ends notifies it (it was never notified, or its repeat interval has passed).
- The resolved notice goes out only when the firing one did (nobody needs to hear "resolved" about
  an alert they never heard of), and it goes out even if a silence now matches: a receiver must not
  be left holding a firing alert that is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

State = Literal["inactive", "pending", "firing", "resolved"]
Transition = Literal["fired", "resolved"]


class AlertLike(Protocol):
    alertname: str
    state: str
    bad_streak: int
    clean_streak: int
    starts_at: datetime | None
    ends_at: datetime | None
    last_notified_at: datetime | None
    notified: bool


@dataclass(frozen=True)
class LifecyclePolicy:
    fire_after: int = 1
    resolve_after: int = 2
    failure_threshold: int = 3
    repeat_interval: timedelta = timedelta(hours=4)

    def __post_init__(self) -> None:
        for name in ("fire_after", "resolve_after", "failure_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.repeat_interval <= timedelta(0):
            raise ValueError("repeat_interval must be positive")

    def fire_after_for(self, alertname: str) -> int:
        return self.failure_threshold if alertname == "monitor_failure" else self.fire_after


def observe(alert: AlertLike, bad: bool, now: datetime, policy: LifecyclePolicy) -> Transition | None:
    """Fold one rule signal into the alert; return the transition it caused, if any."""
    if bad:
        alert.bad_streak += 1
        alert.clean_streak = 0
        if alert.state == "firing":
            return None
        if alert.bad_streak >= policy.fire_after_for(alert.alertname):
            alert.state = "firing"
            alert.starts_at = now
            alert.ends_at = None
            alert.notified = False
            alert.last_notified_at = None
            return "fired"
        alert.state = "pending"
        return None
    alert.clean_streak += 1
    alert.bad_streak = 0
    if alert.state == "firing":
        if alert.clean_streak >= policy.resolve_after:
            alert.state = "resolved"
            alert.ends_at = now
            return "resolved"
        return None
    if alert.state == "pending":
        alert.state = "inactive"
    return None


def firing_notice_due(alert: AlertLike, now: datetime, policy: LifecyclePolicy, silenced: bool) -> bool:
    """Whether a firing notification should be queued for this alert now."""
    if alert.state != "firing" or silenced:
        return False
    if not alert.notified or alert.last_notified_at is None:
        return True
    return now - alert.last_notified_at >= policy.repeat_interval


def resolved_notice_due(alert: AlertLike, transition: Transition | None) -> bool:
    return transition == "resolved" and alert.notified
