"""SQLite write-ahead-log checkpoints off the request path (local mode).

Why: SQLite copies its write-ahead log into the database file inside the commit that takes the log
past 1,000 pages (``wal_autocheckpoint``), while that writer still holds the writers' turn
(``monitor.db.write_lock``). A 1M-row unlabelled push keeps 150 MB of rows, so its commit carried a
150 MB checkpoint: 0.65-0.79 s instead of 0.24-0.26 s (a standalone ``sqlite3`` check), with every
other writer queued behind it. Each engine's connections turn the automatic checkpoint off, and one
thread per process and database runs a ``PASSIVE`` checkpoint every ``CHECKPOINT_SECONDS``: it never
waits for or blocks readers and writers, and frames still in use are copied on a later round. The
last connection to close a database checkpoints it, as SQLite always does.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from urllib.parse import quote

import sqlalchemy as sa

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 0.5  # read at every round: the log stays within a push or two of the file


class Checkpointer:
    """The checkpoint thread of one engine's database in this process (started at its first
    connection, again after a fork or ``dispose``; stopped by ``dispose`` or the engine's end)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    def ensure_running(self) -> None:
        with self._lock:
            # A forked worker sees its parent's thread as stopped, so it starts its own.
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop, self._wake = threading.Event(), threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop, self._wake),
                                            name="sqlite-checkpoint", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Checkpoint now rather than at the end of the current wait."""
        self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        try:  # mode=rw: never create a database that was removed meanwhile
            connection = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("no WAL checkpoints for %s: %s", self.path, exc)
            return
        try:
            while True:
                wake.wait(CHECKPOINT_SECONDS)
                wake.clear()
                if stop.is_set():
                    return
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # locked by a schema change, file gone: next round
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
        finally:
            connection.close()


def attach(engine: sa.Engine) -> Checkpointer | None:
    """Turn the engine's automatic checkpoints off and checkpoint from a thread instead; None (and
    nothing changed) for an in-memory database, which has no log."""
    path = engine.url.database
    if not path or path == ":memory:" or (engine.url.query or {}).get("mode") == "memory":
        return None
    checkpointer = Checkpointer(os.path.abspath(path))

    @sa.event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI types
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()
        checkpointer.ensure_running()

    @sa.event.listens_for(engine, "engine_disposed")
    def _disposed(_engine) -> None:  # noqa: ANN001 - SQLAlchemy's
        checkpointer.stop()

    weakref.finalize(engine, checkpointer.stop)
    _CHECKPOINTERS[engine] = checkpointer
    return checkpointer


_CHECKPOINTERS: weakref.WeakKeyDictionary[sa.Engine, Checkpointer] = weakref.WeakKeyDictionary()


def checkpointer_of(engine: sa.Engine) -> Checkpointer | None:
    return _CHECKPOINTERS.get(engine)
