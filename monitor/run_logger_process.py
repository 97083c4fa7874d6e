"""The MLflow run logger as a side process of ``serve``: drains the run outbox outside the request
workers (``MONITOR_RUN_LOGGER=process``, the default).

Why a process: logging one run costs the logging process about 30 ms of CPU (four tracking calls,
the artifact upload) against 5-10 ms for the 100-row push that queued it, and in a request worker
it competed with the pushes for the worker's GIL and core. Here it has its own interpreter, and
the pushes never wait for it.

- ``python -m monitor run-logger`` runs ``serve_forever``: ``MONITOR_RUN_LOGGER_THREADS`` threads
  each log due rows (claims are exclusive, monitor.monitoring_runs) and poll every
  ``MONITOR_RUN_LOGGER_POLL_SECONDS`` when none is due, at nice 5 (the request workers first when
  the cores are busy). While pushes keep arriving each thread logs at most one run per
  ``PUSH_YIELD_SECONDS`` (nice does not cover the tracking server's share of a run, twice the
  logger's). SIGTERM: the run being logged is finished, then the process exits; rows left stay
  pending.
- ``Supervisor`` is used by the gunicorn master (monitor/gunicorn_conf.py): it starts the process
  when the master is ready, starts it again if it exits (after 1 s, doubling up to 30 s), and stops
  it when the master exits. The process exits by itself if its parent (the master) goes away.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger(__name__)
RESTART_MIN_SECONDS, RESTART_MAX_SECONDS = 1.0, 30.0
POLL_SECONDS = 0.5  # how often the supervisor looks whether its child is still alive
RETRY_MAX_SECONDS = 10.0  # the longest wait between passes while the database does not answer
NICE = 5  # CPU weight about a third of a request worker's under contention (Linux CFS)
# Set by the gunicorn master before it forks the workers (monitor/gunicorn_conf.py) when it runs the
# side process: the workers' apps then leave the outbox to it (monitor.app).
SUPERVISED = False


def serve_forever(settings: Any, stop: threading.Event | None = None) -> int:
    """Log the outbox's runs until ``stop`` is set (SIGTERM/SIGINT set it in the CLI)."""
    from monitor.db import make_engine, make_session_factory
    from monitor.monitoring_runs import RunLogger, release_leases
    from monitor.registry import Registry

    stop = stop or threading.Event()
    parent = os.getppid()
    # Background work: when the host's cores are busy, the request workers (and their boot) go
    # first; the outbox drains with what is left and fully once the load pauses (backlog in /metrics).
    try:
        os.nice(NICE)
    except OSError:
        log.info("could not lower the run logger's priority")
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    registry = Registry(settings.tracking_uri, settings.champion_alias, max_models=1)
    logger = RunLogger(sessions, registry)
    if engine.dialect.name == "sqlite":
        # One logger per host on SQLite, and the workers do not log: leases left by a logger that
        # died (restarted by the supervisor) are stale.
        release_leases(sessions)

    def work() -> None:
        failures = 0
        while not stop.is_set():
            if os.getppid() != parent:  # the master is gone (SIGKILL): nobody would stop us
                stop.set()
                return
            try:
                done = logger.log_due(stop=stop, give_way_to_pushes=True)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the database unreachable: retry with backoff
                failures += 1
                if failures == 1:
                    log.exception("run logger pass failed; retrying with backoff")
                else:
                    log.warning("run logger pass failed again (%s): %s", failures,
                                (str(exc).splitlines() or [type(exc).__name__])[0])
                stop.wait(min(RETRY_MAX_SECONDS, settings.run_logger_poll_seconds * 2 ** failures))
                continue
            if not done:
                stop.wait(settings.run_logger_poll_seconds)

    threads = [threading.Thread(target=work, name=f"run-logger-{i}", daemon=True)
               for i in range(settings.run_logger_threads)]
    for thread in threads:
        thread.start()
    log.info("MLflow run logger started (pid %s, %s threads)", os.getpid(), len(threads))
    try:
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()
    log.info("MLflow run logger stopped after %s runs", logger.logged)
    return 0


def main(settings: Any) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return serve_forever(settings, stop)


class _Child:
    """A process started with ``os.posix_spawn`` and followed by pid.

    Not ``subprocess.Popen``: its fork + error pipe, run from a thread of the gunicorn master while
    the main thread forks a worker, left the pipe's write end in the worker (workers never exec),
    and the thread stayed blocked in ``Popen`` until that worker exited: a killed logger went
    unrestarted for minutes. posix_spawn has no error pipe, and its file actions close the master's
    inheritable descriptors (gunicorn's listening sockets), so the logger never holds the port."""

    def __init__(self, argv: list[str]) -> None:
        closing = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
        self.pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=closing,
                                  setsigdef=(signal.SIGPIPE, signal.SIGXFSZ), setsigmask=())
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # gunicorn's waitpid(-1) on SIGCHLD reaped it first
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def stop(self, timeout: float) -> None:
        """SIGTERM (it finishes the run it is logging), SIGKILL after ``timeout``."""
        if self.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                return
            time.sleep(0.05)


def _inheritable_fds() -> list[int]:
    found = []
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return found


class Supervisor:
    """Keeps one ``python -m monitor run-logger`` child running for the gunicorn master."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "monitor", "run-logger"]
        self.proc: _Child | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._keep_running, name="run-logger-supervisor",
                                            daemon=True)
            self._thread.start()

    def _keep_running(self) -> None:
        delay = RESTART_MIN_SECONDS
        while not self._stopping.is_set():
            started = time.monotonic()
            self.proc = _Child(self.argv)
            while self.proc.poll() is None and not self._stopping.is_set():
                self._stopping.wait(POLL_SECONDS)
            if self._stopping.is_set():
                return
            code = self.proc.returncode
            if time.monotonic() - started > 60:
                delay = RESTART_MIN_SECONDS  # it ran a while: not a crash loop
            log.warning("the MLflow run logger exited (%s); starting it again in %.0f s", code, delay)
            self._stopping.wait(delay)
            delay = min(RESTART_MAX_SECONDS, delay * 2)

    def stop(self, timeout: float) -> None:
        """SIGTERM the child (it finishes the run it is logging) and wait up to ``timeout``."""
        self._stopping.set()
        if self.proc is not None:
            self.proc.stop(timeout)
