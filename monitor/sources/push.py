"""Read a pushed batch (JSON records, CSV or Parquet) into a frame, within limits checked before work.

Every limit is checked before the expensive step it protects: the body size while it is read (with
or without ``Content-Length``), Parquet rows/columns from the file's metadata before any page is
decoded, CSV columns from the header and rows by telling the parser where to stop, JSON numbers and
records by hooks while the document is parsed. A breach is ``BatchTooLarge`` (413, naming the limit);
any other problem of the body is ``BadBatch`` (400/415) saying what to send instead.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import IO, Any

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
READ_CHUNK = 256 * 1024
# After a body breaks the size limit, read (and drop) this much more so the client, still sending,
# sees the 413 instead of a connection reset; a body longer than that gets the reset.
DRAIN_BYTES = 64 * 1024 * 1024
MAX_NUMBER_CHARS = 64  # longer JSON number literals are refused before they are converted


class BadBatch(ValueError):
    """The body cannot be read as a batch; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or {}


class BatchTooLarge(BadBatch):
    """A limit of ``BatchLimits`` is exceeded (413); nothing was evaluated or stored."""

    def __init__(self, what: str, limit: int, setting: str, seen: str = "") -> None:
        seen_text = f" ({seen})" if seen else ""
        super().__init__(f"batch too large: the limit is {limit} {what}{seen_text}; split the batch "
                         f"or raise {setting}", status=413,
                         detail={"limit": limit, "unit": what, "setting": setting})


@dataclass(frozen=True)
class BatchLimits:
    max_bytes: int
    max_rows: int
    max_columns: int
    max_cells: int
    max_decoded_bytes: int = 512 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> BatchLimits:
        return cls(max_bytes=settings.max_batch_bytes, max_rows=settings.max_batch_rows,
                   max_columns=settings.max_batch_columns, max_cells=settings.max_batch_cells,
                   max_decoded_bytes=settings.max_batch_decoded_bytes)

    def check_decoded(self, size: int, seen: str) -> None:
        if size > self.max_decoded_bytes:
            raise BatchTooLarge("bytes decoded", self.max_decoded_bytes, "MONITOR_MAX_BATCH_DECODED_BYTES",
                                seen)

    def check_shape(self, rows: int, columns: int) -> None:
        if columns > self.max_columns:
            raise BatchTooLarge("columns", self.max_columns, "MONITOR_MAX_BATCH_COLUMNS", f"got {columns}")
        if rows > self.max_rows:
            raise BatchTooLarge("rows", self.max_rows, "MONITOR_MAX_BATCH_ROWS", f"got {rows}")
        if rows * columns > self.max_cells:
            raise BatchTooLarge("cells (rows x columns)", self.max_cells, "MONITOR_MAX_BATCH_CELLS",
                                f"got {rows} x {columns}")

    def rows_allowed(self, columns: int) -> int:
        return min(self.max_rows, self.max_cells // max(columns, 1))


def read_body(environ: dict[str, Any], limits: BatchLimits) -> bytes | bytearray:
    """The request body, refused (413) as soon as it is known to exceed ``limits.max_bytes``.

    A declared ``Content-Length`` over the limit is refused without reading; a chunked body (no
    length; gunicorn de-chunks and sets ``wsgi.input_terminated``) is read until one byte past it.
    A body with a length is read into one buffer of that size (a bytearray): no second copy.
    """
    stream: IO[bytes] = environ["wsgi.input"]
    raw_length = environ.get("CONTENT_LENGTH") or ""
    cap = limits.max_bytes
    if raw_length.strip():
        try:
            length = int(raw_length)
        except ValueError:
            raise BadBatch(f"Content-Length {raw_length!r} is not a number") from None
        if length > cap:
            raise BatchTooLarge("bytes", cap, "MONITOR_MAX_BATCH_BYTES", f"Content-Length {length}")
        return _read_exactly(stream, length)
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not de-chunk: there is no body to read safely
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(READ_CHUNK, cap + 1 - total))
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > cap:
            parts.clear()
            _drain(stream)
            raise BatchTooLarge("bytes", cap, "MONITOR_MAX_BATCH_BYTES", "chunked body")
        parts.append(chunk)


def _read_exactly(stream: IO[bytes], length: int) -> bytearray:
    # Filled in place: joining the chunks held the body twice (a 160 MB Parquet push: 330 MB).
    body, done = bytearray(length), 0
    source = _length_reader(stream) or stream
    while done < length:
        chunk = source.read(min(READ_CHUNK * 4, length - done))
        if not chunk:
            raise BadBatch(f"the body ended after {done} of {length} bytes (Content-Length)")
        body[done:done + len(chunk)] = chunk
        done += len(chunk)
    return body


def _length_reader(stream: Any) -> Any:
    """gunicorn's ``wsgi.input`` (``http.body.Body``) reads its body reader 1 KB at a time whatever
    size is asked (0.5 s of CPU for a 160 MB body); while it holds nothing read ahead, its
    ``LengthReader`` gives the same bytes in large reads. None for any other server's stream."""
    reader, ahead = getattr(stream, "reader", None), getattr(stream, "buf", None)
    if type(reader).__name__ != "LengthReader" or not isinstance(ahead, io.BytesIO):
        return None
    return reader if ahead.seek(0, io.SEEK_END) == 0 else None  # Body keeps its buffer at the end


def _drain(stream: IO[bytes]) -> None:
    dropped = 0
    try:
        while dropped < DRAIN_BYTES:
            chunk = stream.read(READ_CHUNK)
            if not chunk:
                return
            dropped += len(chunk)
    except OSError:
        return


def parse_batch(body: bytes | bytearray, content_type: str | None, limits: BatchLimits) -> pd.DataFrame:
    kind = CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if kind is None:
        raise BadBatch(f"unsupported Content-Type {content_type!r}: send one of {ACCEPTED}", status=415)
    if len(body) > limits.max_bytes:
        raise BatchTooLarge("bytes", limits.max_bytes, "MONITOR_MAX_BATCH_BYTES", f"got {len(body)}")
    if not body or body.isspace():  # strip() would copy the body
        raise BadBatch("the request body is empty: send at least one row")
    try:
        if kind == "json":
            frame = _from_json(body, limits)
        elif kind == "csv":
            frame = _from_csv(body, limits)
        else:
            frame = _from_parquet(body, limits)
    except BadBatch:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error is the sender's to fix
        raise BadBatch(f"cannot read the body as {kind}: {' '.join(str(exc).split())[:200]}") from None
    if len(frame) == 0:
        raise BadBatch("the batch has no rows: send at least one row")
    _refuse_duplicate_columns([str(c) for c in frame.columns])
    return frame


def _refuse_duplicate_columns(columns: list[str]) -> None:
    seen: set[str] = set()
    duplicated = sorted({c for c in columns if c in seen or seen.add(c)})
    if duplicated:
        raise BadBatch(f"duplicated column(s) {duplicated}: send each column once")


# --- Parquet: the footer says how big the batch is before any page is decoded ------------------------

# Encodings of string (BYTE_ARRAY) pages whose decoded size the encoded size bounds: PLAIN and
# DELTA_LENGTH_BYTE_ARRAY store every byte of every value. Dictionary pages repeat one stored value
# any number of times and DELTA_BYTE_ARRAY shares prefixes: a few bytes can decode to gigabytes.
_BOUNDED = {"PLAIN", "RLE", "BIT_PACKED", "DELTA_LENGTH_BYTE_ARRAY"}
_DICTIONARY = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
_WIDTH = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}


def _from_parquet(body: bytes | bytearray, limits: BatchLimits) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(body))
    meta = parquet.metadata
    limits.check_shape(meta.num_rows, meta.num_columns)
    _refuse_duplicate_columns(list(parquet.schema_arrow.names))
    bound, dictionary = _decoded_bound(meta)
    limits.check_decoded(bound, "bound from the Parquet metadata")
    if dictionary:
        # Dictionary-encoded strings are decoded as indices + dictionary (both bounded by the file's
        # sizes), their expanded size measured exactly, and only then expanded.
        parquet = pq.ParquetFile(pa.BufferReader(body), read_dictionary=sorted(dictionary))
        table = parquet.read()
        expanded = bound + sum(_expanded_bytes(table.column(name)) for name in dictionary)
        limits.check_decoded(expanded, "measured on the Parquet dictionary")
        for name in dictionary:
            column = table.column(name)
            table = table.set_column(table.schema.get_field_index(name), name,
                                     column.cast(column.type.value_type))
    else:
        table = parquet.read()
    # One column block per column and the Arrow buffers freed as they are converted: peak memory
    # stays near one copy of the decoded batch instead of two.
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _decoded_bound(meta: Any) -> tuple[int, set[str]]:
    """A bound of the decoded batch in bytes from the footer alone (fixed-width columns: values x
    width; strings: their stored bytes + offsets), and the top-level columns with dictionary-encoded
    strings, whose expanded size is measured on the dictionary instead."""
    total, dictionary = 0, set()
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            kind = chunk.physical_type
            if kind in _WIDTH:
                total += chunk.num_values * _WIDTH[kind]
            elif kind == "FIXED_LEN_BYTE_ARRAY":
                total += chunk.num_values * (meta.schema.column(index).length or 0)
            else:
                # Every stored page is decompressed: its size counts whatever the encoding.
                encodings = set(chunk.encodings)
                total += chunk.total_uncompressed_size + 8 * chunk.num_values
                if encodings & _DICTIONARY and encodings <= _BOUNDED | _DICTIONARY:
                    dictionary.add(chunk.path_in_schema.split(".")[0])
                elif not encodings <= _BOUNDED:  # a value is at most as long as the stored page
                    total += chunk.num_values * chunk.total_uncompressed_size
    return total, dictionary


def _expanded_bytes(column: Any) -> int:
    """Bytes of a dictionary-encoded string column once expanded: per row, its value's length."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        return 0
    total = 0
    for chunk in column.chunks:
        lengths = pc.binary_length(chunk.dictionary)
        taken = pc.sum(pc.take(lengths, chunk.indices)).as_py()
        total += int(taken or 0) + 8 * len(chunk)
    return total


# --- CSV: columns from the header, rows by stopping the parser one past the limit ---------------------

def _from_csv(body: bytes | bytearray, limits: BatchLimits) -> pd.DataFrame:
    end = body.find(b"\n")
    first = (body if end < 0 else body[:end]).decode("utf-8", errors="replace")
    header = next(csv.reader([first]), [])
    limits.check_shape(0, len(header))
    _refuse_duplicate_columns([h.strip() for h in header])
    allowed = limits.rows_allowed(len(header))
    frame = pd.read_csv(_reader(body), nrows=allowed + 1)
    if len(frame) > allowed:
        limits.check_shape(len(frame), len(header))
    return frame


def _reader(body: bytes | bytearray) -> IO[bytes]:
    """A file over the body without copying it (``BytesIO`` copies a bytearray)."""
    return io.BufferedReader(_ViewReader(memoryview(body)))


class _ViewReader(io.RawIOBase):
    def __init__(self, view: memoryview) -> None:
        self._view, self._at = view, 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        size = min(len(target), len(self._view) - self._at)
        target[:size] = self._view[self._at:self._at + size]
        self._at += size
        return size


# --- JSON: numbers and objects counted (and checked) by the parser's hooks ----------------------------

class _JsonCounter:
    def __init__(self, limits: BatchLimits) -> None:
        self.limits = limits
        self.values = 0

    def _count(self) -> None:
        self.values += 1
        if self.values > self.limits.max_cells:
            raise BatchTooLarge("cells (rows x columns)", self.limits.max_cells, "MONITOR_MAX_BATCH_CELLS",
                                "counted while parsing JSON")

    def number(self, text: str) -> float | int:
        self._count()
        if len(text) > MAX_NUMBER_CHARS:
            raise BadBatch(f"a JSON number has {len(text)} characters ({text[:20]}…): send numbers that fit "
                           "a 64-bit float")
        if "." in text or "e" in text or "E" in text:
            value: float | int = float(text)
        else:
            value = int(text)
            if abs(value) >= 2**53:
                value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadBatch(f"the JSON number {text[:30]} does not fit a 64-bit float")
        return value

    @staticmethod
    def constant(text: str) -> None:
        raise BadBatch(f"{text} is not valid JSON: send null for a missing value, or drop the row")

    def pairs(self, items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            keys = [k for k, _ in items]
            duplicated = sorted({k for k in keys if keys.count(k) > 1})
            raise BadBatch(f"a JSON object repeats key(s) {duplicated}: send each column once per record")
        if len(obj) > self.limits.max_columns:
            raise BatchTooLarge("columns", self.limits.max_columns, "MONITOR_MAX_BATCH_COLUMNS",
                                f"a JSON object has {len(obj)} keys")
        return obj


def _from_json(body: bytes | bytearray, limits: BatchLimits) -> pd.DataFrame:
    counter = _JsonCounter(limits)
    try:
        data = json.loads(body, parse_int=counter.number, parse_float=counter.number,
                          parse_constant=counter.constant, object_pairs_hook=counter.pairs)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, BadBatch):
            raise
        raise BadBatch(f"cannot read the body as json: {' '.join(str(exc).split())[:200]}") from None
    if isinstance(data, dict) and "records" in data:
        data = data["records"]
    if isinstance(data, dict) and {"columns", "data"} <= set(data):
        return _from_split(data["columns"], data["data"], limits)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BadBatch('JSON batches are a list of records ([{"x0": 1.0, "x1": 2.0, "y": 1.1}, …]), '
                       '{"records": [...]} or {"columns": [...], "data": [[...]]}')
    columns = {key for record in data for key in record}
    limits.check_shape(len(data), len(columns))
    return pd.DataFrame.from_records(data)


def _from_split(columns: Any, rows: Any, limits: BatchLimits) -> pd.DataFrame:
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadBatch('"columns" must be a list of column names')
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise BadBatch('"data" must be a list of rows, each a list of values')
    limits.check_shape(len(rows), len(columns))
    _refuse_duplicate_columns(columns)
    for index, row in enumerate(rows):
        if len(row) != len(columns):
            raise BadBatch(f"row {index} of \"data\" has {len(row)} values, \"columns\" names {len(columns)}")
    return pd.DataFrame(rows, columns=columns)
