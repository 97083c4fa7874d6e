"""The MLflow run logger gives way to running evaluations, but only for a bounded time per run."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_side_process_gives_way_while_pushes_queue_runs_at_most_the_yield_time(
        backend, tmp_path, make_database, monkeypatch):
    """The side process cannot see the workers' requests: it reads how recently a push queued a run."""
    from datetime import timedelta

    from monitor.db import make_engine, make_session_factory, utcnow
    from monitor.migrate import upgrade
    from monitor.models import Evaluation, MonitoringRun

    url = f"sqlite:///{tmp_path}/monitor.db" if backend == "sqlite" else make_database()
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    logger = RunLogger(sessions=sessions, registry=None)
    monkeypatch.setattr(monitoring_runs, "PUSH_YIELD_SECONDS", 0.3)

    def queued(source: str, age: float) -> None:
        with sessions.begin() as session:
            row = Evaluation(model_name="m", model_version="1", batch_id=uuid.uuid4().hex,
                             source=source, status="ok")
            session.add(row)
            session.flush()
            session.add(MonitoringRun(evaluation_id=row.id, run_key=f"k{row.id}", payload={},
                                      created_at=utcnow() - timedelta(seconds=age)))

    def waited() -> float:
        started = time.monotonic()
        logger._give_way_to_pushes()
        return time.monotonic() - started

    try:
        assert not logger._pushes_arriving() and waited() < 0.1  # an empty outbox
        queued("push", 5.0)
        assert not logger._pushes_arriving() and waited() < 0.1  # the last push was a while ago
        queued("push", 0.0)
        assert logger._pushes_arriving()
        assert 0.25 <= waited() < 2.0  # pushes arriving: it waits, but never past the yield time
        queued("simulated", 0.0)  # a scheduled round's run: rounds are not pushes
        assert not logger._pushes_arriving()
        stop = threading.Event()
        stop.set()
        queued("push", 0.0)
        started = time.monotonic()
        logger._give_way_to_pushes(stop)  # stopping: no wait
        assert time.monotonic() - started < 0.1
    finally:
        engine.dispose()
