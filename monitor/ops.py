"""Operations endpoints: liveness, readiness and Prometheus metrics (blueprint ``ops``)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from monitor.metrics import render

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
    if reasons:
        return jsonify(error="not ready", detail={"reasons": reasons}), 503
    scheduler = monitor.scheduler
    return jsonify(status="ready", scheduler_leader=scheduler.lock.is_leader,
                   last_round=scheduler.last_round), 200


@bp.get("/metrics")
def metrics() -> Response:
    return Response(render(current_app.extensions["driftline"].metrics),
                    mimetype="text/plain; version=0.0.4; charset=utf-8")
