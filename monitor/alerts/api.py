"""HTTP API of the alerts: /api/alerts, /api/alert-episodes (history), /api/silences, /api/deliveries.

Reading is open (like the rest of the monitor's API); creating or expiring a silence needs the
monitor's bearer token (``MONITOR_API_TOKEN``; without one configured, which only local mode
allows, writes are open). Receivers are never taken from requests and their URLs never shown.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from monitor.alerts import silences as silence_rules
from monitor.alerts.engine import active_silences
from monitor.alerts.episodes import episode_doc
from monitor.alerts.models import Alert, AlertEpisode, Delivery, Silence, aware
from monitor.alerts.payloads import rfc3339
from monitor.db import utcnow

EXTENSION = "driftline_alerts"
MAX_LIMIT = 500

bp = Blueprint("alerts", __name__)


def _runtime() -> Any:
    return current_app.extensions[EXTENSION]


def _error(status: int, message: str, detail: Any = None):  # noqa: ANN202 - Flask response tuple
    return jsonify(error=message, detail=detail), status


def _authorised() -> bool:
    token = _runtime().api_token
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _limit() -> int:
    try:
        return max(1, min(MAX_LIMIT, int(request.args.get("limit", 100))))
    except ValueError:
        return 100


def _parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} is not an RFC 3339 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- documents ------------------------------------------------------------------------------------

def delivery_doc(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id, "alert_id": row.alert_id, "fingerprint": row.fingerprint, "receiver": row.receiver,
        "kind": row.kind, "evaluation_id": row.evaluation_id, "status": row.status,
        "attempts": row.attempts, "failed_attempts": row.failed_attempts,
        "next_attempt_at": rfc3339(aware(row.next_attempt_at)) if row.status == "pending" else None,
        "last_error": row.last_error, "created_at": rfc3339(aware(row.created_at)),
        "sent_at": rfc3339(aware(row.sent_at)) if row.sent_at else None,
        "alertname": row.alert["labels"].get("alertname"), "model": row.alert["labels"].get("model"),
    }


def alert_doc(alert: Alert, silences: list[Silence], now: datetime,
              deliveries: list[Delivery] | None = None) -> dict[str, Any]:
    silenced = silence_rules.silenced_by(silences, alert.labels, now) if alert.state == "firing" else []
    doc: dict[str, Any] = {
        "id": alert.id, "fingerprint": alert.fingerprint,
        "state": "silenced" if silenced else alert.state,
        "status": {"state": "suppressed" if silenced else
                   ("active" if alert.state == "firing" else alert.state), "silencedBy": silenced},
        "labels": alert.labels, "annotations": alert.annotations, "generatorURL": alert.generator_url,
        "startsAt": rfc3339(aware(alert.starts_at)) if alert.starts_at else None,
        "endsAt": rfc3339(aware(alert.ends_at)) if alert.ends_at else None,
        "bad_streak": alert.bad_streak, "clean_streak": alert.clean_streak, "episodes": alert.episodes,
        "last_notified_at": rfc3339(aware(alert.last_notified_at)) if alert.last_notified_at else None,
        "last_evaluation_id": alert.last_evaluation_id,
        "fired_evaluation_id": alert.fired_evaluation_id,
        "updated_at": rfc3339(aware(alert.updated_at)),
    }
    if deliveries is not None:
        doc["deliveries"] = [delivery_doc(d) for d in deliveries]
    return doc


def silence_doc(row: Silence, now: datetime) -> dict[str, Any]:
    row.starts_at, row.ends_at = aware(row.starts_at), aware(row.ends_at)
    return {"id": row.id, "matchers": row.matchers, "startsAt": rfc3339(row.starts_at),
            "endsAt": rfc3339(row.ends_at), "createdBy": row.created_by, "comment": row.comment,
            "status": {"state": silence_rules.status(row, now)},
            "updatedAt": rfc3339(aware(row.updated_at))}


# --- alerts ----------------------------------------------------------------------------------------

@bp.get("/api/alerts")
def list_alerts():  # noqa: ANN201
    now = utcnow()
    with _runtime().session_factory() as session:
        stmt = sa.select(Alert).order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(_limit())
        if request.args.get("model"):
            stmt = stmt.where(Alert.model_name == request.args["model"])
        if request.args.get("alertname"):
            stmt = stmt.where(Alert.alertname == request.args["alertname"])
        wanted = request.args.get("state")
        if wanted in ("firing", "silenced"):
            stmt = stmt.where(Alert.state == "firing")
        elif wanted:
            stmt = stmt.where(Alert.state == wanted)
        alerts = session.scalars(stmt).all()
        silences = active_silences(session, now)
        by_alert: dict[int, list[Delivery]] = {a.id: [] for a in alerts}
        if alerts:
            rows = session.scalars(sa.select(Delivery).where(Delivery.alert_id.in_(list(by_alert)))
                                   .order_by(Delivery.id.desc())).all()
            for row in rows:
                if len(by_alert[row.alert_id]) < 20:
                    by_alert[row.alert_id].append(row)
        docs = [alert_doc(a, silences, now, by_alert[a.id]) for a in alerts]
    if wanted in ("firing", "silenced"):
        docs = [d for d in docs if d["state"] == wanted]
    return jsonify({"alerts": docs})


@bp.get("/api/alerts/<fingerprint>")
def get_alert(fingerprint: str):  # noqa: ANN201
    now = utcnow()
    with _runtime().session_factory() as session:
        alert = session.scalars(sa.select(Alert).where(Alert.fingerprint == fingerprint)).first()
        if alert is None:
            return _error(404, f"no alert with fingerprint {fingerprint}")
        rows = session.scalars(sa.select(Delivery).where(Delivery.alert_id == alert.id)
                               .order_by(Delivery.id.desc()).limit(_limit())).all()
        episodes = session.scalars(sa.select(AlertEpisode).where(AlertEpisode.alert_id == alert.id)
                                   .order_by(AlertEpisode.id.desc()).limit(_limit())).all()
        doc = alert_doc(alert, active_silences(session, now), now, list(rows))
        doc["history"] = [episode_doc(e) for e in episodes]
        return jsonify(doc)


@bp.get("/api/alert-episodes")
def list_episodes():  # noqa: ANN201
    """Every firing → resolved episode, newest first: ?model=, ?alertname=, ?open=true, ?limit=."""
    with _runtime().session_factory() as session:
        stmt = sa.select(AlertEpisode).order_by(AlertEpisode.starts_at.desc(), AlertEpisode.id.desc())
        if request.args.get("model"):
            stmt = stmt.where(AlertEpisode.model_name == request.args["model"])
        if request.args.get("alertname"):
            stmt = stmt.where(AlertEpisode.alertname == request.args["alertname"])
        if request.args.get("open", "").lower() in ("1", "true", "yes"):
            stmt = stmt.where(AlertEpisode.ends_at.is_(None))
        rows = session.scalars(stmt.limit(_limit())).all()
        return jsonify({"episodes": [episode_doc(r) for r in rows]})


# --- deliveries ------------------------------------------------------------------------------------

@bp.get("/api/deliveries")
def list_deliveries():  # noqa: ANN201
    with _runtime().session_factory() as session:
        stmt = sa.select(Delivery).order_by(Delivery.id.desc()).limit(_limit())
        for arg, column in (("status", Delivery.status), ("receiver", Delivery.receiver),
                            ("fingerprint", Delivery.fingerprint)):
            if request.args.get(arg):
                stmt = stmt.where(column == request.args[arg])
        rows = session.scalars(stmt).all()
        counts = session.execute(sa.select(Delivery.receiver, Delivery.status, sa.func.count())
                                 .group_by(Delivery.receiver, Delivery.status)).all()
        summary: dict[str, dict[str, int]] = {}
        for receiver, status, n in counts:
            summary.setdefault(receiver, {})[status] = n
        return jsonify({"deliveries": [delivery_doc(r) for r in rows], "summary": summary,
                        "receivers": [r.name for r in _runtime().config.receivers]})


# --- silences --------------------------------------------------------------------------------------

@bp.get("/api/silences")
def list_silences():  # noqa: ANN201
    now = utcnow()
    with _runtime().session_factory() as session:
        rows = session.scalars(sa.select(Silence).order_by(Silence.created_at.desc()).limit(_limit())).all()
        docs = [silence_doc(r, now) for r in rows]
    wanted = request.args.get("state")
    return jsonify({"silences": [d for d in docs if not wanted or d["status"]["state"] == wanted]})


@bp.get("/api/silences/<silence_id>")
def get_silence(silence_id: str):  # noqa: ANN201
    with _runtime().session_factory() as session:
        row = session.get(Silence, silence_id)
        if row is None:
            return _error(404, f"no silence {silence_id}")
        return jsonify(silence_doc(row, utcnow()))


@bp.post("/api/silences")
def create_silence():  # noqa: ANN201
    if not _authorised():
        return _error(401, "missing or wrong API token: creating a silence needs one",
                      "send the header 'Authorization: Bearer <MONITOR_API_TOKEN>'")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "expected a JSON object {matchers, startsAt, endsAt, createdBy, comment}")
    now = utcnow()
    try:
        matchers = silence_rules.normalise_matchers(body.get("matchers"))
        starts_at = _parse_time(body["startsAt"], "startsAt") if body.get("startsAt") else now
        ends_at = _parse_time(body.get("endsAt"), "endsAt")
        created_by, comment = body.get("createdBy"), body.get("comment")
        if not isinstance(created_by, str) or not created_by.strip():
            raise ValueError("createdBy is required")
        if not isinstance(comment, str) or not comment.strip():
            raise ValueError("comment is required (say why)")
        if ends_at <= starts_at:
            raise ValueError("endsAt must be after startsAt")
        if ends_at <= now:
            raise ValueError("endsAt is in the past")
    except (KeyError, ValueError) as exc:
        return _error(400, str(exc))
    row = Silence(id=str(uuid.uuid4()), matchers=matchers, starts_at=max(starts_at, now),
                  ends_at=ends_at, created_by=created_by.strip()[:255],
                  comment=comment.strip(), created_at=now, updated_at=now)
    with _runtime().session_factory() as session, session.begin():
        session.add(row)
    return jsonify({"silenceID": row.id, "silence": silence_doc(row, now)}), 201


@bp.delete("/api/silences/<silence_id>")
def expire_silence(silence_id: str):  # noqa: ANN201
    if not _authorised():
        return _error(401, "missing or wrong API token: expiring a silence needs one",
                      "send the header 'Authorization: Bearer <MONITOR_API_TOKEN>'")
    now = utcnow()
    with _runtime().session_factory() as session, session.begin():
        row = session.get(Silence, silence_id)
        if row is None:
            return _error(404, f"no silence {silence_id}")
        row.starts_at, row.ends_at = aware(row.starts_at), aware(row.ends_at)
        if row.ends_at > now:
            row.ends_at = now
            if row.starts_at > now:
                row.starts_at = now
            row.updated_at = now
        return jsonify(silence_doc(row, now))
