"""Insert a row holding a large ``bytea`` with PostgreSQL's binary COPY, streamed a few MB at a time.

psycopg2 sends a parameter inside the query text: a ``bytea`` value is hex-escaped (2x its size), put
in the query (2x again) and copied into libpq's buffer (2x more), and the server then parses the hex.
For the 160 MB of Parquet a 1M x 20 batch makes, that peaked above 1 GB in the worker and took 5 s.
Binary COPY sends the bytes as they are, from a stream; it runs on the session's connection, so in
its transaction, and the columns left out get their defaults (the id) as with an INSERT.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

CHUNK = 4 * 1024 * 1024
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no header extension
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's timestamps count microseconds from here
_MICROSECOND = timedelta(microseconds=1)


def copy_row(session: Session, table: sa.Table, values: dict[str, Any]) -> None:
    """Insert ``values`` (column name -> value) into ``table`` with one binary COPY. A ``LargeBinary``
    value is bytes-like or a binary file (sent whole, whatever its position)."""
    cursor = session.connection().connection.cursor()
    try:
        copy_rows(cursor, table, list(values), [values])
    finally:
        cursor.close()


def copy_rows(cursor: Any, table: sa.Table, names: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """Insert ``rows`` (each: ``names`` -> value) into ``table`` with one binary COPY on a DB-API
    ``cursor``. The rows are read as the COPY goes: an iterator may still be making the next one."""
    columns = [table.c[name] for name in names]
    quoted = ", ".join(f'"{c.name}"' for c in columns)
    cursor.copy_expert(f'COPY "{table.name}" ({quoted}) FROM STDIN WITH (FORMAT binary)',
                       _Stream(_pieces(columns, rows)))


def _pieces(columns: list[sa.Column], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    yield _HEADER
    for values in rows:
        yield struct.pack("!h", len(columns))
        for column in columns:
            yield from _field(column.type, values[column.name])
    yield struct.pack("!h", -1)  # end of data


def _field(kind: sa.types.TypeEngine, value: Any) -> Iterator[bytes]:
    """One field: its length, then its value in the column type's binary form."""
    if value is None:
        yield struct.pack("!i", -1)
        return
    if isinstance(kind, sa.LargeBinary):
        if hasattr(value, "read"):  # a binary file, read from its start to its end
            size = value.seek(0, io.SEEK_END)
            value.seek(0)
            yield struct.pack("!i", size)
            while chunk := value.read(CHUNK):
                yield chunk
            return
        data = memoryview(value).cast("B")
        yield struct.pack("!i", len(data))
        for start in range(0, len(data), CHUNK):
            yield bytes(data[start:start + CHUNK])  # copy_expert takes bytes, not views
        return
    if isinstance(kind, sa.BigInteger):
        payload = struct.pack("!q", int(value))
    elif isinstance(kind, sa.Integer):
        payload = struct.pack("!i", int(value))
    elif isinstance(kind, sa.DateTime):
        if value.tzinfo is None:  # naive values are UTC in this schema (monitor.db.utcnow)
            value = value.replace(tzinfo=UTC)
        payload = struct.pack("!q", (value - _EPOCH) // _MICROSECOND)
    elif isinstance(kind, sa.String):
        payload = str(value).encode()
    elif isinstance(kind, sa.JSON):  # PostgreSQL's json: its binary form is the text
        payload = json.dumps(value).encode()
    else:
        raise TypeError(f"copy_row: no binary form for a {kind!r} column")
    yield struct.pack("!i", len(payload)) + payload


class _Stream:
    """The file-like object ``copy_expert`` reads: one piece per call (any length will do)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - copy_expert calls read(size)
        return next(self._pieces, b"")
