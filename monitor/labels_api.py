"""Labels later over HTTP (blueprint ``labels``): labels for a pushed batch, and the estimate's track record.

``POST /api/models/<name>/batches/<batch_id>/labels`` (write token): JSON records, CSV or Parquet
with the target column, in the pushed row order, or with an id column named by ``?id_column=`` (the
batch must have been pushed with the same ``?id_column=``). ``GET /api/models/<name>/estimate``: the
label-free estimate's track record (mean absolute relative error, interval coverage, unreliable).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError

from monitor.api import ApiError, _api_error, _request_frame, require_token
from monitor.labels import LabelsError, LabelsService, track_record_of
from monitor.registry import ModelNotFound, TrackingUnavailable

log = logging.getLogger(__name__)
bp = Blueprint("labels", __name__, url_prefix="/api")
bp.register_error_handler(ApiError, _api_error)


def _monitor() -> Any:
    return current_app.extensions["driftline"]


@bp.post("/models/<name>/batches/<batch_id>/labels")
@require_token
def post_labels(name: str, batch_id: str) -> tuple[Response, int]:
    """Complete a batch pushed without its target: concept drift, realized performance, the estimate's
    error."""
    id_column = request.args.get("id_column") or None
    frame = _request_frame()
    monitor = _monitor()
    try:
        status, result = LabelsService(monitor.service).receive(name, batch_id, frame, id_column)
    except LabelsError as exc:
        raise ApiError(exc.status, str(exc), exc.detail) from None
    except ModelNotFound as exc:
        raise ApiError(404, str(exc), "the batch's model version is gone from the registry") from None
    except TrackingUnavailable as exc:
        raise ApiError(503, str(exc), "the tracking server is down; retry later") from None
    except (OperationalError, InterfaceError) as exc:
        log.warning("labels for %s batch %s not recorded: %s", name, batch_id, str(exc).splitlines()[0])
        raise ApiError(503, "monitor database unavailable", "nothing was recorded; retry later") from None
    return jsonify(result), status


@bp.get("/models/<name>/estimate")
def estimate_record(name: str) -> Response:
    """How good the label-free estimate has been for this model (batches that got their labels)."""
    with _monitor().sessions() as session:
        record = track_record_of(session, name)
    return jsonify(model=name, **record.as_dict())
