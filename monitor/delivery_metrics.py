"""Delivery metrics for models (DORA, with "deploy" read as "the champion alias moved").

Pure functions over plain data, no I/O and no clock (``now`` is always passed in):

- ``promotions``: alias-history entries as the trainer writes them to the registered-model tag
  ``driftline.alias_history`` (``{alias, version, at, by, reason}``, ISO timestamps, oldest first);
  only ``alias == "champion"`` entries are champion changes. A rollback is recognised by the
  ``previous`` entry the trainer writes right after it (reason ``"rolled back from champion to vN"``),
  or passed explicitly as ``rollbacks`` (timestamps of champion moves that were rollbacks).
- ``alerts``: ``{name, model, starts_at, ends_at}`` (``ends_at`` None while still open), optionally
  ``version``: an alert that names its model version only counts against a promotion of that version.
- ``run_starts``: ``{version: start time of the version's training run}``.

Automatic promotions and rollbacks (the closed loop, ``by`` = ``driftline-monitor (...)``) are champion
moves like any other: they count as deployments, an automatic rollback fails the promotion it undoes;
``automatic_promotions`` / ``automatic_rollbacks`` say how many of them the monitor made.

The four numbers, per model:

- deployment frequency: champion changes per week over the last ``window_days`` (default 28);
- lead time: training run start → promotion, for forward promotions (rollbacks are excluded:
  re-promoting an old version says nothing about how fast new work ships);
- change failure rate: share of forward promotions followed, within ``failure_window`` (7 days), by a
  drift or degradation alert on the promoted version (an alert without a version: one that started
  before the next champion change), or ended by a rollback within that window;
- time to restore: alert start → the earlier of its resolution and the first rollback after it
  started; alerts neither resolved nor rolled back are counted as open, not as restored.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CHAMPION = "champion"
PREVIOUS = "previous"
ROLLBACK_MARK = "rolled back from champion"
AUTOMATIC_ACTOR = "driftline-monitor"
FAILURE_ALERTS = frozenset({"data_drift", "concept_drift", "performance_degradation"})
FAILURE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class ChampionChange:
    version: str
    at: datetime
    by: str
    reason: str
    rollback: bool

    @property
    def automatic(self) -> bool:
        """Moved by the monitor's closed loop (monitor/promotion.py), not by a person or `train`."""
        return self.by.startswith(AUTOMATIC_ACTOR)


@dataclass(frozen=True)
class AlertSpan:
    name: str
    model: str
    starts_at: datetime
    ends_at: datetime | None
    version: str | None = None


@dataclass(frozen=True)
class DeliveryMetrics:
    champion_changes: int
    window_days: int
    changes_in_window: int
    deployment_frequency_per_week: float
    lead_times: tuple[timedelta, ...]
    lead_time_median: timedelta | None
    promotions_evaluated: int
    failed_promotions: int
    change_failure_rate: float | None
    restore_times: tuple[timedelta, ...]
    time_to_restore_median: timedelta | None
    open_alerts: int
    rollbacks: int
    automatic_promotions: int = 0  # forward champion moves made by the monitor's closed loop
    automatic_rollbacks: int = 0

    def as_dict(self) -> dict[str, Any]:
        def secs(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return {
            "champion_changes": self.champion_changes,
            "window_days": self.window_days,
            "changes_in_window": self.changes_in_window,
            "deployment_frequency_per_week": self.deployment_frequency_per_week,
            "lead_time_median_seconds": secs(self.lead_time_median),
            "lead_times_seconds": [secs(v) for v in self.lead_times],
            "promotions_evaluated": self.promotions_evaluated,
            "failed_promotions": self.failed_promotions,
            "change_failure_rate": self.change_failure_rate,
            "time_to_restore_median_seconds": secs(self.time_to_restore_median),
            "restore_times_seconds": [secs(v) for v in self.restore_times],
            "open_alerts": self.open_alerts,
            "rollbacks": self.rollbacks,
            "automatic_promotions": self.automatic_promotions,
            "automatic_rollbacks": self.automatic_rollbacks,
        }


def parse_time(value: Any) -> datetime | None:
    """ISO text or datetime → aware UTC datetime (naive values are read as UTC); None if unreadable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def champion_changes(
    promotions: Iterable[Mapping[str, Any]], rollbacks: Iterable[Any] = ()
) -> list[ChampionChange]:
    """The champion moves in time order, each flagged as a rollback or a forward promotion."""
    entries = [e for e in promotions if isinstance(e, Mapping)]
    rollback_times = {t for t in (parse_time(r) for r in rollbacks) if t is not None}
    # The trainer writes a rollback as two adjacent entries: champion -> old version, then previous ->
    # the version rolled away from (reason "rolled back from champion to vN"); their ``at`` may differ.
    marked = {
        i - 1
        for i, e in enumerate(entries)
        if i > 0
        and e.get("alias") == PREVIOUS
        and str(e.get("reason", "")).startswith(ROLLBACK_MARK)
        and entries[i - 1].get("alias") == CHAMPION
    }
    changes = []
    for i, entry in enumerate(entries):
        at = parse_time(entry.get("at"))
        if entry.get("alias") != CHAMPION or at is None:
            continue
        changes.append(
            ChampionChange(
                version=str(entry.get("version")),
                at=at,
                by=str(entry.get("by") or ""),
                reason=str(entry.get("reason") or ""),
                rollback=i in marked or at in rollback_times,
            )
        )
    changes.sort(key=lambda c: c.at)
    return changes


def alert_spans(alerts: Iterable[Mapping[str, Any]], model: str | None = None) -> list[AlertSpan]:
    spans = []
    for alert in alerts:
        start = parse_time(alert.get("starts_at"))
        if start is None or (model is not None and alert.get("model") != model):
            continue
        version = alert.get("version")
        spans.append(
            AlertSpan(
                str(alert.get("name")),
                str(alert.get("model")),
                start,
                parse_time(alert.get("ends_at")),
                None if version is None else str(version),
            )
        )
    return sorted(spans, key=lambda a: a.starts_at)


def deployment_frequency(
    changes: list[ChampionChange], now: datetime, window_days: int = 28
) -> tuple[int, float]:
    """(champion changes in the last ``window_days``, changes per week over that window)."""
    since = now - timedelta(days=window_days)
    count = sum(1 for c in changes if since < c.at <= now)
    return count, count / (window_days / 7)


def lead_times(changes: list[ChampionChange], run_starts: Mapping[str, Any]) -> list[timedelta]:
    out = []
    for change in changes:
        if change.rollback:
            continue
        started = parse_time(run_starts.get(change.version))
        if started is not None and started <= change.at:
            out.append(change.at - started)
    return out


def failed_promotions(
    changes: list[ChampionChange],
    alerts: list[AlertSpan],
    window: timedelta = FAILURE_WINDOW,
    names: frozenset[str] = FAILURE_ALERTS,
) -> tuple[int, int]:
    """(failed, evaluated) forward promotions: see the module docstring for what counts."""
    failed = evaluated = 0
    for i, change in enumerate(changes):
        if change.rollback:
            continue
        evaluated += 1
        following = changes[i + 1] if i + 1 < len(changes) else None
        end = change.at + window
        # An alert without a version belongs to whichever champion was in place: stop at the next move.
        # One with a version belongs to that version (alias-history times are whole seconds, so a move
        # and an alert in the same second cannot be ordered by time alone).
        unversioned_end = min(end, following.at) if following is not None else end
        rolled_back = following is not None and following.rollback and following.at - change.at <= window
        alerted = any(
            a.name in names
            and change.at <= a.starts_at
            and (
                a.starts_at < unversioned_end
                if a.version is None
                else a.version == change.version and a.starts_at < end
            )
            for a in alerts
        )
        if rolled_back or alerted:
            failed += 1
    return failed, evaluated


def restore_times(
    changes: list[ChampionChange], alerts: list[AlertSpan], names: frozenset[str] = FAILURE_ALERTS
) -> tuple[list[timedelta], int]:
    """(time to restore per restored alert, number of alerts still open)."""
    rollbacks = [c.at for c in changes if c.rollback]
    restored, still_open = [], 0
    for alert in alerts:
        if alert.name not in names:
            continue
        ends = [t for t in rollbacks if t >= alert.starts_at]
        if alert.ends_at is not None:
            ends.append(alert.ends_at)
        if not ends:
            still_open += 1
            continue
        restored.append(min(ends) - alert.starts_at)
    return restored, still_open


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def delivery_metrics(
    promotions: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    run_starts: Mapping[str, Any] | None = None,
    rollbacks: Iterable[Any] = (),
    model: str | None = None,
    window_days: int = 28,
    failure_window: timedelta = FAILURE_WINDOW,
    failure_alerts: frozenset[str] = FAILURE_ALERTS,
) -> DeliveryMetrics:
    """All four metrics for one model (``model`` filters ``alerts`` by their ``model`` field)."""
    changes = champion_changes(promotions, rollbacks)
    spans = alert_spans(alerts, model)
    in_window, per_week = deployment_frequency(changes, now, window_days)
    leads = lead_times(changes, run_starts or {})
    failed, evaluated = failed_promotions(changes, spans, failure_window, failure_alerts)
    restores, still_open = restore_times(changes, spans, failure_alerts)
    return DeliveryMetrics(
        champion_changes=len(changes),
        window_days=window_days,
        changes_in_window=in_window,
        deployment_frequency_per_week=per_week,
        lead_times=tuple(leads),
        lead_time_median=_median(leads),
        promotions_evaluated=evaluated,
        failed_promotions=failed,
        change_failure_rate=(failed / evaluated) if evaluated else None,
        restore_times=tuple(restores),
        time_to_restore_median=_median(restores),
        open_alerts=still_open,
        rollbacks=sum(1 for c in changes if c.rollback),
        automatic_promotions=sum(1 for c in changes if c.automatic and not c.rollback),
        automatic_rollbacks=sum(1 for c in changes if c.automatic and c.rollback),
    )


def humanize(value: timedelta | float | None) -> str:
    """A duration as people say it: 45 s, 12 min, 3.5 h, 2.0 d; an em dash for none."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
