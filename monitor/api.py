"""The JSON API (blueprint ``api``): models and their evaluations, pushing batches, evaluating now.

Reads are open; writes need ``Authorization: Bearer <MONITOR_API_TOKEN>``. Errors are always
``{"error": ..., "detail": ...}`` with a message saying what is wrong and what to do.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from monitor.evaluation import BatchConflict, DatabaseUnavailable, Outcome
from monitor.models import MAX_ROW_ID, Evaluation
from monitor.openapi import openapi_document
from monitor.registry import ModelNotFound, TrackingUnavailable
from monitor.sources import Batch
from monitor.sources.digest import rows_digest
from monitor.sources.push import BadBatch, BatchLimits, parse_batch, read_body
from monitor.sources.simulated import manual_batch

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_PAGE = 200


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: Any = None) -> tuple[Response, int]:
    return jsonify(error=error, detail=detail), status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    return error_response(exc.status, exc.error, exc.detail)


def _monitor() -> Any:
    return current_app.extensions["driftline"]


def require_token(view: Callable) -> Callable:
    """Bearer-token check in constant time; local mode without a token configured allows writes."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        expected = _monitor().settings.token()
        if expected is None:
            return view(*args, **kwargs)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            return error_response(401, "missing or wrong API token",
                                  "send the header 'Authorization: Bearer <MONITOR_API_TOKEN>'")
        return view(*args, **kwargs)

    return wrapped


# --- reads ------------------------------------------------------------------------------------------

@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(request.host_url.rstrip("/")))


@bp.get("/models")
def list_models() -> Response:
    """Models with evaluations, plus champions the registry knows (when it answers), with latest status."""
    monitor = _monitor()
    with monitor.sessions() as session:
        latest_ids = sa.select(sa.func.max(Evaluation.id)).group_by(Evaluation.model_name)
        query = sa.select(Evaluation).where(Evaluation.id.in_(latest_ids))
        latest = {e.model_name: e for e in session.scalars(query)}
        counts = dict(session.execute(sa.select(Evaluation.model_name, sa.func.count())
                                      .group_by(Evaluation.model_name)).all())
        from monitor.labels import track_records

        records = {n: r.as_dict() for n, r in track_records(session).items()}
    registry_error = None
    names = set(latest)
    try:
        names |= set(monitor.scheduler.models())
    except TrackingUnavailable as exc:
        registry_error = str(exc)
    models = []
    for name in sorted(names):
        last = latest.get(name)
        models.append({
            "name": name, "evaluations": counts.get(name, 0),
            "latest": last.summary() if last is not None else None,
            "status": _status(last),
            "estimate": records.get(name),  # the label-free estimate's track record (monitor/labels.py)
            "links": {"evaluations": url_for("api.list_evaluations", name=name, _external=False)},
        })
    return jsonify(models=models, registry_error=registry_error)


def _status(last: Evaluation | None) -> str:
    if last is None:
        return "pending"
    if last.status == "collecting":
        collecting = (last.report or {}).get("collecting") or {}
        return f"collecting reference, {collecting.get('rows', 0)} of {collecting.get('of', '?')} rows"
    if last.status != "ok":
        return last.status
    return "drift" if (last.data_drift or last.concept_drift or last.prediction_drift) else "ok"


@bp.get("/models/<name>/evaluations")
def list_evaluations(name: str) -> Response:
    """Newest first. Keyset paging (?limit=&before_id=) or ?page=&per_page=; ``next`` links onward."""
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    per_page = _int_arg("per_page", limit, 1, MAX_PAGE)
    page = _int_arg("page", 0, 1, 10**9) if "page" in request.args else None
    before_id = _int_arg("before_id", 0, 1, 2**62) if "before_id" in request.args else None
    status = request.args.get("status")
    query = sa.select(Evaluation).where(Evaluation.model_name == name).order_by(Evaluation.id.desc())
    if status:
        query = query.where(Evaluation.status == status)
    with _monitor().sessions() as session:
        if page is not None:
            rows = session.scalars(query.offset((page - 1) * per_page).limit(per_page + 1)).all()
            size = per_page
        else:
            if before_id is not None:
                query = query.where(Evaluation.id < before_id)
            rows = session.scalars(query.limit(limit + 1)).all()
            size = limit
    more = len(rows) > size
    rows = rows[:size]
    next_link = None
    if more and page is not None:
        next_link = url_for("api.list_evaluations", name=name, page=page + 1, per_page=per_page,
                            **({"status": status} if status else {}))
    elif more:
        next_link = url_for("api.list_evaluations", name=name, limit=limit, before_id=rows[-1].id,
                            **({"status": status} if status else {}))
    return jsonify(model=name, evaluations=[r.summary() for r in rows], next=next_link)


@bp.get("/evaluations/<int:evaluation_id>")
def get_evaluation(evaluation_id: int) -> Response:
    found = _monitor().service.get(evaluation_id) if evaluation_id <= MAX_ROW_ID else None
    if found is None:
        raise ApiError(404, f"evaluation {evaluation_id} not found",
                       "list a model's evaluations at /api/models/<name>/evaluations")
    return jsonify(found)


# --- writes -----------------------------------------------------------------------------------------

def _request_frame():  # noqa: ANN202 - a pandas DataFrame
    """The request body as a frame, read and parsed within the batch limits (4xx on the sender's mistakes)."""
    limits = BatchLimits.from_settings(_monitor().settings)
    try:
        return parse_batch(read_body(request.environ, limits), request.content_type, limits)
    except BadBatch as exc:
        raise ApiError(exc.status, str(exc),
                       {**exc.detail, "accepted_content_types": list_content_types()}) from None


@bp.post("/models/<name>/batches")
@require_token
def push_batch(name: str) -> tuple[Response, int]:
    """Evaluate a pushed batch now. Body: JSON records, CSV or Parquet with the inputs and the target
    (or without the target: its labels can come later, POST .../batches/<batch_id>/labels)."""
    frame = _request_frame()
    batch_id = request.headers.get("X-Batch-Id") or request.args.get("batch_id") or f"push-{uuid.uuid4().hex}"
    if len(batch_id) > 255:
        raise ApiError(400, "batch id too long", "use at most 255 characters in X-Batch-Id")
    # ?id_column=: a column that is not an input, kept to join labels sent later (monitor/labels.py).
    meta = {"id_column": request.args["id_column"]} if request.args.get("id_column") else {}
    return _run(name, Batch(batch_id=batch_id, source="push", frame=frame, digest=rows_digest(frame),
                            meta=meta))


@bp.post("/models/<name>/evaluate")
@require_token
def evaluate_now(name: str) -> tuple[Response, int]:
    """Evaluate now on a batch from the simulated source. JSON body (all optional): scenario, rows, seed,
    version (else the champion alias)."""
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object",
                       {"example": {"scenario": "data_drift", "rows": 100}})
    monitor = _monitor()
    try:
        rows = int(body.get("rows", monitor.settings.simulated_rows))
        seed = int(body["seed"]) if body.get("seed") is not None else None
        if not 1 <= rows <= 1_000_000:
            raise ValueError("rows must be between 1 and 1000000")
        batch = manual_batch(str(body.get("scenario", "clean")), rows, seed)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"invalid request: {exc}",
                       {"example": {"scenario": "clean|data_drift|concept_drift", "rows": 100, "seed": 7}},
                       ) from None
    version = str(body["version"]) if body.get("version") is not None else None
    return _run(name, batch, version=version)


@bp.put("/models/<name>/versions/<version>/reference")
@require_token
def upload_reference(name: str, version: str) -> tuple[Response, int]:
    """Upload a reference (CSV or Parquet with the model inputs and the target) for one version."""
    frame = _request_frame()
    try:
        return jsonify(store_reference(_monitor(), name, version, frame)), 201
    except ModelNotFound as exc:
        raise ApiError(404, str(exc), f"{name} has no version {version} in the registry") from None
    except TrackingUnavailable as exc:
        raise ApiError(503, str(exc), "the tracking server is down; retry later") from None
    except ValueError as exc:
        raise ApiError(422, f"reference refused: {exc}",
                       "send the model's input columns and its target, one row per example") from None


def store_reference(monitor: Any, name: str, version: str, frame: Any) -> dict[str, Any]:
    """Shared by the API and the CLI: check the version exists, fit, store, report."""
    model_config = monitor.config.model(name)
    model = monitor.registry.load(name, version, target=model_config.target, task=model_config.task)
    return monitor.service.profiles.upload(model, frame, monitor.config.drift_settings(name))


def _run(name: str, batch: Batch, version: str | None = None) -> tuple[Response, int]:
    monitor = _monitor()
    try:
        outcome: Outcome = monitor.service.evaluate(name, batch, version=version)
    except DatabaseUnavailable as exc:
        raise ApiError(503, str(exc), "the monitor database is down; retry later") from None
    except ModelNotFound as exc:
        raise ApiError(404, str(exc), "register the model and set its champion alias first") from None
    except BatchConflict as exc:
        raise ApiError(409, str(exc), {"batch_id": batch.batch_id}) from None
    result = outcome.result
    if outcome.status == "rejected":
        return error_response(422, result.get("error") or "batch rejected", result)
    if outcome.status == "no_reference":
        return error_response(409, "no reference data for this model version", result)
    if outcome.status == "collecting":
        return jsonify(result), (200 if outcome.duplicate else 202)
    if outcome.status == "failed":
        # Only a dependency that did not answer (tracking server, S3) is worth a retry (503); anything
        # else failing inside the monitor is our bug (500). Sender mistakes never get here: 4xx above.
        return error_response(503 if outcome.transient else 500,
                              result.get("error") or "evaluation failed", result)
    return jsonify(result), (200 if outcome.duplicate else 201)


def list_content_types() -> list[str]:
    from monitor.sources.push import CONTENT_TYPES

    return sorted(CONTENT_TYPES)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter {name} must be between {low} and {high}, got {value}")
    return value
