"""A commit on SQLite does not copy the write-ahead log into the database; the checkpoint thread
does, soon after (monitor/sqlite_checkpoints.py)."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from monitor import sqlite_checkpoints
from monitor.db import make_engine

BLOB_BYTES = 24 * 1024 * 1024  # 6,000 pages: six times the log size SQLite checkpoints at by itself


def _wait_for(condition, seconds: float = 10.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _database_with_a_table(path) -> tuple[sa.Engine, sqlite_checkpoints.Checkpointer]:  # noqa: ANN001
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE kept (id INTEGER PRIMARY KEY, data BLOB)")
    checkpointer = sqlite_checkpoints.checkpointer_of(engine)
    assert checkpointer is not None
    return engine, checkpointer


def test_a_big_commit_leaves_the_log_to_the_checkpoint_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_checkpoints, "CHECKPOINT_SECONDS", 3600.0)  # only when woken
    path = tmp_path / "monitor.db"
    engine, checkpointer = _database_with_a_table(path)
    try:
        assert checkpointer.running
        before = os.path.getsize(path)
        with engine.begin() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            connection.execute(sa.text("INSERT INTO kept (data) VALUES (:data)"),
                               {"data": os.urandom(BLOB_BYTES)})
        # Committed, in the log, not yet in the database file (SQLite alone would have copied it).
        assert os.path.getsize(path) - before < BLOB_BYTES // 10
        assert os.path.getsize(f"{path}-wal") > BLOB_BYTES
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT length(data) FROM kept").scalar() == BLOB_BYTES
        checkpointer.wake()
        assert _wait_for(lambda: os.path.getsize(path) - before > BLOB_BYTES)
    finally:
        engine.dispose()
    assert not checkpointer.running  # dispose stops the thread


def test_the_thread_runs_on_its_own_clock_and_comes_back_after_dispose(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_checkpoints, "CHECKPOINT_SECONDS", 0.05)
    path = tmp_path / "monitor.db"
    engine, checkpointer = _database_with_a_table(path)
    try:
        engine.dispose()
        assert not checkpointer.running
        before = os.path.getsize(path)
        with engine.begin() as connection:  # the pool reconnects: so does the checkpoint thread
            connection.execute(sa.text("INSERT INTO kept (data) VALUES (:data)"),
                               {"data": os.urandom(BLOB_BYTES)})
        assert checkpointer.running
        assert _wait_for(lambda: os.path.getsize(path) - before > BLOB_BYTES)
    finally:
        engine.dispose()


def test_an_in_memory_database_gets_no_thread():
    engine = make_engine("sqlite://")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        assert sqlite_checkpoints.checkpointer_of(engine) is None
    finally:
        engine.dispose()
