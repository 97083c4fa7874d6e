"""Run `python -m monitor serve` as a child process and read its database directly."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from tests.services.process import ManagedProcess, free_port, http_ok
from tests.services.tracking import REPO, clean_env


def start_monitor(workdir: Path, name: str, *, db_url: str, tracking_url: str, model: str | list[str],
                  interval: float = 2.0, workers: int = 2, scheduler: bool = True,
                  **extra: str) -> tuple[ManagedProcess, str]:
    """A monitor serving on a free port, scheduler on (unless told), watching only ``model`` (or
    the models listed; simulated source)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.yaml"
    names = [model] if isinstance(model, str) else model
    config.write_text("discover: false\nmodels:\n" + "".join(f"  - name: {n}\n" for n in names))
    port = free_port()
    env = clean_env(
        DRIFTLINE_MODE="local", DRIFTLINE_DATA_DIR=str(workdir), MONITOR_DATABASE_URL=db_url,
        MLFLOW_TRACKING_URI=tracking_url, MONITOR_HOST="127.0.0.1", MONITOR_PORT=str(port),
        MONITOR_WORKERS=str(workers), MONITOR_SCHEDULER=str(scheduler).lower(),
        MONITOR_INTERVAL_SECONDS=str(interval),
        MONITOR_SOURCE="simulated", MONITOR_CONFIG_FILE=str(config), MONITOR_API_TOKEN="t" * 24,
        MONITOR_RETRY_MAX_SECONDS="2", **extra,
    )
    proc = ManagedProcess(name, [sys.executable, "-m", "monitor", "serve"], workdir / f"{name}.log",
                          env=env, cwd=REPO).start()
    url = f"http://127.0.0.1:{port}"
    # Booting takes 5-10 s; on a 2-core machine shared with other test runs it took over 60 s.
    proc.wait_until(lambda: http_ok(f"{url}/healthz"), timeout=150, what="serving /healthz")
    return proc, url


def gunicorn_workers(master_pid: int) -> list[int]:
    """The request workers of a gunicorn master: its children minus the MLflow run logger."""
    return [pid for pid in child_pids(master_pid) if not is_run_logger(pid)]


def run_logger_pids(master_pid: int) -> list[int]:
    """The master's MLflow run logger side process (``python -m monitor run-logger``), if running."""
    return [pid for pid in child_pids(master_pid) if is_run_logger(pid)]


def child_pids(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (the run logger is started from a thread of the master)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended
    return sorted(set(found))


def is_run_logger(pid: int) -> bool:
    try:
        return b"run-logger" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def rows(db_url: str, query: str, **params: object) -> list[sa.Row]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))
    finally:
        engine.dispose()


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             proc: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except sa.exc.OperationalError:
            pass
        time.sleep(0.5)
    tail = proc.log_tail(60) if proc else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
