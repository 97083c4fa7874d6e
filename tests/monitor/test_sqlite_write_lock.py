"""SQLite writers of several processes take turns on the lock file instead of SQLite's polling."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from monitor.db import make_engine, make_session_factory, write_lock


def _writer(url: str, log: str, rounds: int) -> None:
    sessions = make_session_factory(make_engine(url))
    for _ in range(rounds):
        with write_lock(sessions):
            with open(log, "a") as out:
                out.write(f"in {os.getpid()}\n")
            time.sleep(0.01)  # a transaction's length: another writer would be inside now
            with open(log, "a") as out:
                out.write(f"out {os.getpid()}\n")


def test_writers_in_two_processes_never_overlap_and_both_progress(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/monitor.db"
    log = str(tmp_path / "log")
    context = multiprocessing.get_context("fork")  # as gunicorn forks its workers
    _writer(url, log, 1)  # the parent opened its lock file first: children must not share it
    workers = [context.Process(target=_writer, args=(url, log, 20)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = Path(log).read_text().splitlines()
    assert len(lines) == 2 * (1 + 3 * 20)
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):  # each "in" followed by its "out"
        assert enter.startswith("in ") and leave == "out " + enter[3:]
    assert (tmp_path / "monitor.db-writers").stat().st_mode & 0o777 == 0o600


def test_an_in_memory_database_needs_no_lock_file():
    sessions = make_session_factory(make_engine("sqlite://"))
    with write_lock(sessions):
        pass
