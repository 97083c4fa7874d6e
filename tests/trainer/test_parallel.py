"""The trainer's thread pool helper and the MLflow setting it changes while logging concurrently."""

from __future__ import annotations

import os
import threading
import time

import pytest

from trainer import training


def test_in_parallel_returns_results_in_input_order_from_several_threads():
    threads: set[str] = set()
    both_started = threading.Barrier(2, timeout=10)

    def work(item: int) -> int:
        threads.add(threading.current_thread().name)
        if item < 2:
            both_started.wait()  # only returns if items 0 and 1 run at the same time
        time.sleep(0.01 * (5 - item))  # later items finish first
        return item * 10

    assert list(training._in_parallel(work, range(5), workers=5)) == [0, 10, 20, 30, 40]
    assert len(threads) > 1


def test_in_parallel_with_one_worker_runs_in_the_calling_thread_lazily():
    seen: list[tuple[int, threading.Thread]] = []

    def work(item: int) -> int:
        seen.append((item, threading.current_thread()))
        return item

    results = training._in_parallel(work, [1, 2, 3], workers=1)
    assert next(results) == 1 and len(seen) == 1  # each item runs when its result is asked for
    assert list(results) == [2, 3]
    assert {thread for _, thread in seen} == {threading.current_thread()}


def test_in_parallel_raises_at_the_failing_item_after_the_others_finish():
    finished: list[int] = []

    def work(item: int) -> int:
        if item == 1:
            raise ValueError("boom")
        time.sleep(0.05)
        finished.append(item)
        return item

    results = training._in_parallel(work, [0, 1, 2], workers=3)
    assert next(results) == 0
    with pytest.raises(ValueError, match="boom"):
        next(results)
    assert sorted(finished) == [0, 2]  # the running one was not abandoned half-way


@pytest.mark.parametrize("before", [None, "false", "yes"])
def test_env_var_recording_is_restored_after_concurrent_logging(monkeypatch, before):
    if before is None:
        monkeypatch.delenv(training.RECORD_ENV_VARS, raising=False)
    else:
        monkeypatch.setenv(training.RECORD_ENV_VARS, before)
    with training._env_var_recording_off(True):
        assert os.environ[training.RECORD_ENV_VARS] == "false"
    assert os.environ.get(training.RECORD_ENV_VARS) == before


def test_explicitly_requested_env_var_recording_means_sequential_logging(monkeypatch):
    monkeypatch.setenv(training.RECORD_ENV_VARS, "true")
    assert training._env_var_recording_requested()
    monkeypatch.setenv(training.RECORD_ENV_VARS, "false")
    assert not training._env_var_recording_requested()
