"""Operations endpoints (blueprint ``ops``): liveness, readiness, Prometheus metrics, the state of
the dependencies (``/api/dependencies``) and the scheduler's missed slots (``/api/missed-slots``)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from monitor.metrics import render
from monitor.missed_slots import list_missed

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and serving; says nothing about its dependencies (that is /readyz)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the database and the tracking server both answer; 503 with the reasons otherwise."""
    monitor = current_app.extensions["driftline"]
    reasons: list[str] = []
    try:
        with monitor.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is a reason to be unready
        reasons.append(f"database unreachable: {str(exc).splitlines()[0][:200]}")
    tracking = monitor.registry.ping()
    if tracking:
        reasons.append(tracking)
    dependencies = monitor.watch.status() if monitor.watch is not None else {}
    if reasons:
        return jsonify(error="not ready", detail={"reasons": reasons, "dependencies": dependencies}), 503
    scheduler = monitor.scheduler
    return jsonify(status="ready", scheduler_leader=scheduler.lock.is_leader,
                   last_round=scheduler.last_round, dependencies=dependencies), 200


@bp.get("/api/dependencies")
def dependencies() -> Response:
    """What the dependency watch last saw (on the process answering; the leader's is authoritative)."""
    monitor = current_app.extensions["driftline"]
    return jsonify(dependencies=monitor.watch.status() if monitor.watch is not None else {},
                   down_after_seconds=monitor.settings.dependency_down_after_seconds)


@bp.get("/api/missed-slots")
def missed_slots() -> tuple[Response, int] | Response:
    """Scheduled slots not evaluated, newest first: ?model=NAME, ?open=true (not caught up), ?limit=."""
    monitor = current_app.extensions["driftline"]
    try:
        limit = max(1, min(500, int(request.args.get("limit", 100))))
    except ValueError:
        return jsonify(error="query parameter limit must be an integer", detail=None), 400
    open_only = request.args.get("open", "").lower() in ("1", "true", "yes")
    with monitor.sessions() as session:
        rows = list_missed(session, request.args.get("model"), open_only, limit)
    return jsonify(missed_slots=rows)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(render(current_app.extensions["driftline"].metrics),
                    mimetype="text/plain; version=0.0.4; charset=utf-8")
