"""The closed loop's API: challengers and their tests per model, decisions, retraining requests (and
the rows and result callback an outside orchestrator uses). Reads go through the read gate like the
rest of /api; the retraining rows and the result callback need the write token."""

from __future__ import annotations

import io
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request

from monitor.api import ApiError, _api_error, _monitor, require_token
from monitor.loop_models import ChallengerScore, ChallengerTest, LoopDecision, RetrainingRequest
from monitor.models import MAX_ROW_ID

bp = Blueprint("loop_api", __name__, url_prefix="/api")
bp.register_error_handler(ApiError, _api_error)


def challengers_of(session: Any, name: str, limit: int = 50) -> dict[str, Any]:
    tests = session.scalars(sa.select(ChallengerTest).where(ChallengerTest.model_name == name)
                            .order_by(ChallengerTest.id.desc()).limit(limit)).all()
    scores = session.scalars(sa.select(ChallengerScore).where(ChallengerScore.model_name == name)
                             .order_by(ChallengerScore.id.desc()).limit(limit)).all()
    decisions = session.scalars(sa.select(LoopDecision).where(LoopDecision.model_name == name)
                                .order_by(LoopDecision.id.desc()).limit(limit)).all()
    retraining = session.scalars(sa.select(RetrainingRequest).where(RetrainingRequest.model_name == name)
                                 .order_by(RetrainingRequest.id.desc()).limit(limit)).all()
    return {"model": name, "tests": [t.as_dict() for t in tests], "scores": [s.as_dict() for s in scores],
            "decisions": [d.as_dict() for d in decisions], "retraining": [r.as_dict() for r in retraining]}


@bp.get("/models/<name>/challengers")
def challengers(name: str) -> Response:
    with _monitor().sessions() as session:
        return jsonify(challengers_of(session, name))


@bp.get("/retraining")
def retraining_list() -> Response:
    with _monitor().sessions() as session:
        found = session.scalars(sa.select(RetrainingRequest).order_by(RetrainingRequest.id.desc())
                                .limit(100)).all()
        return jsonify(requests=[r.as_dict() for r in found])


def _request_or_404(session: Any, request_id: int) -> RetrainingRequest:
    found = session.get(RetrainingRequest, request_id) if 0 < request_id <= MAX_ROW_ID else None
    if found is None:
        raise ApiError(404, f"no retraining request {request_id}")
    return found


@bp.get("/retraining/<int:request_id>/data")
@require_token
def retraining_data(request_id: int) -> Response:
    """The labelled rows the request trains on, as Parquet (for an outside orchestrator)."""
    from monitor.retraining import batches_frame

    with _monitor().sessions() as session:
        found = _request_or_404(session, request_id)
        try:
            frame = batches_frame(session, list(found.batches))
        except LookupError as exc:
            raise ApiError(410, str(exc)) from None
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return Response(buffer.getvalue(), mimetype="application/vnd.apache.parquet")


@bp.post("/retraining/<int:request_id>")
@require_token
def retraining_result(request_id: int) -> tuple[Response, int]:
    """An outside orchestrator's report: {"status": "succeeded", "version": "7"} or
    {"status": "failed", "error": "..."}; the version must already carry the challenger alias."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("status") not in ("succeeded", "failed"):
        raise ApiError(400, "body must be JSON with status succeeded or failed",
                       {"example": {"status": "succeeded", "version": "7"}})
    if body["status"] == "succeeded" and not str(body.get("version") or "").strip():
        raise ApiError(400, "a succeeded retraining names its version")
    monitor = _monitor()
    with monitor.sessions() as session:
        found = _request_or_404(session, request_id)
        if found.status not in ("running", "requested"):
            raise ApiError(409, f"retraining request {request_id} is {found.status} already")
    launcher = monitor.loop.launcher
    if body["status"] == "succeeded":
        launcher.finish(request_id, str(body["version"]), None)
    else:
        launcher.finish(request_id, None, str(body.get("error") or "failed (no reason given)")[:2000])
    with monitor.sessions() as session:
        return jsonify(session.get(RetrainingRequest, request_id).as_dict()), 200
