"""The MLflow run logger gives way to running evaluations, but only for a bounded time per run."""

from __future__ import annotations

import threading
import time

from monitor import monitoring_runs
from monitor.monitoring_runs import RunLogger


def test_the_logger_waits_for_running_evaluations_at_most_the_yield_time(monkeypatch):
    monkeypatch.setattr(monitoring_runs, "YIELD_SECONDS", 0.2)
    logger = RunLogger(sessions=None, registry=None)  # _give_way touches neither
    started = time.monotonic()
    logger._give_way()
    assert time.monotonic() - started < 0.1  # nothing running: no wait

    release = threading.Event()

    def evaluation() -> None:
        with logger.busy():
            release.wait(5)

    worker = threading.Thread(target=evaluation)
    worker.start()
    try:
        while not logger._evaluating:
            time.sleep(0.005)
        started = time.monotonic()
        logger._give_way()  # an evaluation that never ends does not starve the outbox
        assert 0.15 <= time.monotonic() - started < 2.0
    finally:
        release.set()
        worker.join()
    assert logger._evaluating == 0
