"""The monitor's database: one declarative base, an engine and a session factory per app.

Tables are created only by Alembic migrations (monitor/migrations), never by create_all at
start-up, so PostgreSQL in production and SQLite in local mode share one schema history.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from monitor import sqlite_checkpoints
from monitor.pg_copy import copy_row


class Base(DeclarativeBase):
    type_annotation_map = {dict: sa.JSON, list: sa.JSON}


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        sqlite_checkpoints.attach(engine)  # the log's checkpoints leave the writers' commits
        return engine
    engine = sa.create_engine(url, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 5})
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: sa.Engine) -> None:
    """SQLAlchemy's pool_pre_ping, but only for connections idle a while: a database restart still
    costs no request a stale connection, and a busy server does not pay a round trip per checkout
    (two per push, a tenth of a small push's time)."""

    @sa.event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn, record) -> None:  # noqa: ANN001 - pool types
        record.info["driftline.returned_at"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:  # noqa: ANN001 - pool types
        returned = record.info.get("driftline.returned_at")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("connection closed")


def make_session_factory(engine: sa.Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def insert_with_file(session: Any, model: Any, values: dict[str, Any], column: str, data: Any) -> None:
    """Insert one ``model`` row whose ``column`` is the whole of the binary file ``data`` (a large
    Parquet), in the session's transaction, without the file ever being one bytes object: binary COPY
    on PostgreSQL (monitor/pg_copy.py), SQLite's BLOB filled in pieces otherwise. Reads the file from
    its start each time, so a retried transaction can call it again."""
    if session.get_bind().dialect.name == "postgresql":
        copy_row(session, model.__table__, {**values, column: data})
        return
    row = model(**values, **{column: b""})
    session.add(row)
    session.flush()
    sqlite_write_blob(session, model.__tablename__, column, row.id, data)


def sqlite_write_blob(session: Any, table: str, column: str, rowid: int, data: Any,
                      chunk: int = 4 * 1024 * 1024) -> None:
    """Fill a row's BLOB from a binary file, a few MB at a time, in the session's transaction: bound
    as a parameter, the whole file was read into one bytes object and copied again by sqlite3 (a 1M-row
    batch's kept Parquet: 5.6x the batch at the peak)."""
    size = data.seek(0, io.SEEK_END)
    data.seek(0)
    connection = session.connection()
    connection.exec_driver_sql(f'UPDATE "{table}" SET "{column}" = zeroblob(?) WHERE rowid = ?',
                               (size, rowid))
    with connection.connection.driver_connection.blobopen(table, column, rowid) as blob:
        while piece := data.read(chunk):
            blob.write(piece)


_SQLITE_WRITERS: dict[int, threading.Lock] = {}
_SQLITE_LOCK_FILES: dict[tuple[int, str], int] = {}  # (pid, database): this process's lock file


@contextlib.contextmanager
def write_lock(sessions: sessionmaker) -> Iterator[None]:
    """Around a write transaction on SQLite: writers take turns on a fair lock instead of polling.

    SQLite has one writer at a time and makes the others poll (a sleep of up to 100 ms between
    tries, unfair): with 8 request threads in two workers some waited many seconds while newer
    writers won (the 6-15 s stalls of the push benchmark). This process's threads queue on a lock,
    and the processes on an ``flock`` of a file beside the database (the kernel wakes the waiter
    when the holder releases it: no polling sleep; 8 clients pushing 100 rows, p99 758 -> 189 ms,
    /healthz max 1,216 -> 89 ms). PostgreSQL needs nothing (row locks)."""
    bind = sessions.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        yield
        return
    lock = _SQLITE_WRITERS.setdefault(id(bind), threading.Lock())
    with lock:
        fd = _lock_file(bind)
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _lock_file(bind: sa.Engine) -> int | None:
    """This process's descriptor of ``<database>-writers`` (opened after any fork: a descriptor
    inherited from the parent would share its lock); None for an in-memory database."""
    database = bind.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    key = (os.getpid(), database)
    fd = _SQLITE_LOCK_FILES.get(key)
    if fd is None:
        fd = os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _SQLITE_LOCK_FILES[key] = fd
    return fd
