"""What receivers get: Alertmanager's alert shape, its webhook (version 4), Slack, the v2 API.

Pure functions. ``alert_document`` freezes an alert at the moment a notification is decided; the
outbox stores that document, and each receiver's payload is built from it when it is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.alerts.rules import SERVICE

ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager puts in endsAt of a firing alert's webhook
GROUP_BY = ("alertname", "model")


def rfc3339(value: datetime | None) -> str:
    if value is None:
        return ZERO_TIME
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_document(*, status: str, labels: dict[str, str], annotations: dict[str, str],
                   starts_at: datetime | None, ends_at: datetime | None, generator_url: str | None,
                   fingerprint: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": dict(labels),
        "annotations": dict(annotations),
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at) if status == "resolved" else ZERO_TIME,
        "generatorURL": generator_url or "",
        "fingerprint": fingerprint,
    }


def group_key(labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{labels.get(k, "")}"' for k in GROUP_BY)
    return f'{{}}/{{service="{SERVICE}"}}:{{{inner}}}'


def webhook_payload(receiver: str, alert: dict[str, Any], external_url: str) -> dict[str, Any]:
    """Alertmanager webhook payload, version 4, carrying one alert."""
    labels = alert["labels"]
    return {
        "version": "4",
        "groupKey": group_key(labels),
        "truncatedAlerts": 0,
        "status": alert["status"],
        "receiver": receiver,
        "groupLabels": {k: labels[k] for k in GROUP_BY if k in labels},
        "commonLabels": dict(labels),
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": external_url,
        "alerts": [alert],
    }


def alertmanager_payload(alert: dict[str, Any], now: datetime, ttl: timedelta) -> list[dict[str, Any]]:
    """Body of ``POST /api/v2/alerts``: a firing alert lives until now + ttl unless re-sent."""
    ends_at = alert["endsAt"] if alert["status"] == "resolved" else rfc3339(now + ttl)
    return [{
        "labels": alert["labels"],
        "annotations": alert["annotations"],
        "startsAt": alert["startsAt"],
        "endsAt": ends_at,
        "generatorURL": alert["generatorURL"],
    }]


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    labels, ann = alert["labels"], alert["annotations"]
    resolved = alert["status"] == "resolved"
    icon = ":white_check_mark:" if resolved else (":rotating_light:" if labels.get("severity") == "critical"
                                                 else ":warning:")
    state = "RESOLVED" if resolved else "FIRING"
    if "model" in labels:
        title = f"{state}: {labels['alertname']} on {labels['model']} v{labels.get('version', '')}"
    else:  # dependency_down names a dependency, not a model
        title = f"{state}: {labels['alertname']} ({labels.get('dependency', 'monitor')})"
    summary = ann.get("summary", "")
    text = f"{icon} {title}\n{summary}"
    links = []
    if ann.get("evaluation_url"):
        links.append(f"<{ann['evaluation_url']}|evaluation>")
    if ann.get("mlflow_run_url"):
        links.append(f"<{ann['mlflow_run_url']}|MLflow run>")
    context = f"severity {labels.get('severity')} · since {alert['startsAt']}"
    if resolved:
        context += f" · resolved {alert['endsAt']}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (summary or title)[:2900]}},
    ]
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": " · ".join(links)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text, "blocks": blocks}


def log_record(receiver: str, alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "alert",
        "receiver": receiver,
        "status": alert["status"],
        "fingerprint": alert["fingerprint"],
        **{k: alert["labels"].get(k) for k in ("alertname", "model", "version", "severity")},
        "summary": alert["annotations"].get("summary"),
        "startsAt": alert["startsAt"],
        "endsAt": alert["endsAt"],
    }
