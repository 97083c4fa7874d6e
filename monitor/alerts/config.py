"""The alerting configuration, read once from ``MonitorSettings``: policy, receivers and links.

Receivers come from configuration only (never from API input). Their URLs are ``SecretStr``: only
the receiver's name (``webhook``, ``slack``, ``alertmanager``, ``log``) is ever logged or shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from monitor.alerts.lifecycle import LifecyclePolicy
from monitor.alerts.rules import RulePolicy

RECEIVER_KINDS = ("webhook", "slack", "alertmanager", "log")


@dataclass(frozen=True)
class Receiver:
    name: str
    kind: str
    url: SecretStr | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in RECEIVER_KINDS:
            raise ValueError(f"unknown receiver kind {self.kind!r}")
        if self.kind != "log" and self.url is None:
            raise ValueError(f"receiver {self.name} needs a URL")


@dataclass(frozen=True)
class AlertConfig:
    lifecycle: LifecyclePolicy = LifecyclePolicy()
    rules: RulePolicy = RulePolicy()
    receivers: tuple[Receiver, ...] = (Receiver("log", "log"),)
    public_url: str = "http://localhost:8000"
    mlflow_public_url: str = "http://localhost:5000"
    delivery_interval: timedelta = timedelta(seconds=5)
    # Backoff of a failing receiver: base * 2^(failures-1), capped, with ±25 % jitter.
    backoff_base: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=5)
    # Keep-alive of firing alerts in Alertmanager: re-sent every refresh, endsAt = now + 4 refreshes.
    alertmanager_refresh: timedelta = timedelta(seconds=60)
    http_timeout: float = 5.0
    # Sent outbox rows, resolved episodes and caught-up missed slots older than this are deleted.
    history_retention: timedelta = timedelta(days=90)

    def receiver(self, name: str) -> Receiver | None:
        return next((r for r in self.receivers if r.name == name), None)

    @property
    def alertmanager_ttl(self) -> timedelta:
        return 4 * max(self.alertmanager_refresh, self.delivery_interval)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> AlertConfig:
        """Build from ``monitor.settings.MonitorSettings`` (attributes read with defaults)."""
        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        receivers = []
        for name, attr in (("webhook", "alert_webhook_url"), ("slack", "alert_slack_webhook_url"),
                           ("alertmanager", "alertmanager_url")):
            url = getattr(settings, attr, None)
            if url is not None:
                url = url if isinstance(url, SecretStr) else SecretStr(str(url))
                if url.get_secret_value().strip():
                    receivers.append(Receiver(name, name, url))
        receivers.append(Receiver("log", "log"))
        interval = timedelta(seconds=float(get("alert_delivery_interval_seconds", 5.0)))
        config = cls(
            lifecycle=LifecyclePolicy(
                fire_after=int(get("alert_fire_after", 1)),
                resolve_after=int(get("alert_resolve_after", 2)),
                failure_threshold=int(get("alert_failure_threshold", 3)),
                repeat_interval=timedelta(seconds=float(get("alert_repeat_interval_seconds", 14400.0))),
            ),
            rules=RulePolicy(performance_ratio=float(get("alert_performance_ratio", 1.5))),
            receivers=tuple(receivers),
            public_url=str(get("public_url", get("monitor_public_url", "http://localhost:8000"))).rstrip("/"),
            mlflow_public_url=str(get("mlflow_public_url", "http://localhost:5000")).rstrip("/"),
            delivery_interval=interval,
            backoff_base=interval,
            backoff_max=timedelta(seconds=float(get("alert_backoff_max_seconds", 300.0))),
            history_retention=timedelta(days=float(get("alert_history_retention_days", 90.0))),
        )
        if overrides:
            from dataclasses import replace

            config = replace(config, **overrides)
        return config
