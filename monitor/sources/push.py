"""Parse a pushed batch (JSON records, CSV or Parquet) into a frame; errors say what to send instead."""

from __future__ import annotations

import io
import json

import pandas as pd

CONTENT_TYPES = {
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
}
ACCEPTED = ", ".join(sorted(CONTENT_TYPES))


class BadBatch(ValueError):
    """The body cannot be read as a batch; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_batch(body: bytes, content_type: str | None) -> pd.DataFrame:
    kind = CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if kind is None:
        raise BadBatch(f"unsupported Content-Type {content_type!r}: send one of {ACCEPTED}", status=415)
    if not body or not body.strip():
        raise BadBatch("the request body is empty: send at least one row")
    try:
        if kind == "json":
            frame = _from_json(json.loads(body))
        elif kind == "csv":
            frame = pd.read_csv(io.BytesIO(body))
        else:
            frame = pd.read_parquet(io.BytesIO(body))
    except BadBatch:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error is the sender's to fix
        raise BadBatch(f"cannot read the body as {kind}: {' '.join(str(exc).split())[:200]}") from None
    if len(frame) == 0:
        raise BadBatch("the batch has no rows: send at least one row")
    return frame


def _from_json(data: object) -> pd.DataFrame:
    """Accept a list of records, {"records": [...]}, or pandas' split form {"columns", "data"}."""
    if isinstance(data, dict) and "records" in data:
        data = data["records"]
    if isinstance(data, dict) and {"columns", "data"} <= set(data):
        return pd.DataFrame(data["data"], columns=data["columns"])
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BadBatch('JSON batches are a list of records ([{"x0": 1.0, "x1": 2.0, "y": 1.1}, …]), '
                       '{"records": [...]} or {"columns": [...], "data": [[...]]}')
    return pd.DataFrame.from_records(data)
