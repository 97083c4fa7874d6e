"""The MLflow run logger as the gunicorn master's side process (MONITOR_RUN_LOGGER=process, the
default of `serve`), against a real tracking server: the request workers log no run, a first
attempt costs four tracking calls (no search), and killing the logger mid-stream loses and doubles
nothing (the master starts it again and the retried rows are found by their run key)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from tests.monitor.processes import child_pids, rows, run_logger_pids, start_monitor, wait_for

TOKEN = "t" * 24
# What a tracking server logs per request (uvicorn access log): method and path.
ACCESS = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (/api/2\.0/[^ ?"]+)')


def _body(i: int) -> bytes:
    frame = pd.DataFrame({"x0": [10.0 + i + j for j in range(30)], "x1": [50.0 + j % 7 for j in range(30)],
                          "y": [10.5 + i + j for j in range(30)]})
    return frame.to_csv(index=False).encode()


def _push_all(url: str, model: str, batch_ids: list[str], clients: int = 4) -> dict[str, int]:
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def client(mine: list[str]) -> None:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=120)
        for batch_id in mine:
            conn.request("POST", f"/api/models/{model}/batches", body=_body(int(batch_id.split("-")[-1])),
                         headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv",
                                  "X-Batch-Id": batch_id})
            resp = conn.getresponse()
            resp.read()
            with lock:
                statuses[batch_id] = resp.status
        conn.close()

    threads = [threading.Thread(target=client, args=(batch_ids[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def _calls(log_text: str) -> Counter:
    return Counter(f"{method} {path}" for method, path in ACCESS.findall(log_text))


def _runs_per_batch(mlflow_client, model: str) -> dict[str, list]:
    monitoring = mlflow_client.get_experiment_by_name("monitoring")
    found = mlflow_client.search_runs([monitoring.experiment_id],
                                      filter_string=f"tags.`driftline.model` = '{model}'", max_results=1000)
    per_batch: dict[str, list] = {}
    for run in found:
        per_batch.setdefault(run.data.tags["driftline.batch_id"], []).append(run)
    return per_batch


def _pending(db_url: str) -> list:
    return rows(db_url, "SELECT id FROM monitoring_runs WHERE status = 'pending'")


def test_side_process_logs_every_run_in_four_calls(tmp_path, monitor_db, tracking_server, champion,
                                                   mlflow_client):
    proc, url = start_monitor(tmp_path, "side", db_url=monitor_db, tracking_url=tracking_server.url,
                              model=champion, workers=2, scheduler=False)
    try:
        wait_for(lambda: len(run_logger_pids(proc.proc.pid)) == 1, timeout=60, what="the run logger",
                 proc=proc)
        (logger_pid,) = run_logger_pids(proc.proc.pid)
        tracking_log = tracking_server.process.log_path
        before = tracking_log.stat().st_size
        batch_ids = [f"side-{i}" for i in range(12)]
        statuses = _push_all(url, champion, batch_ids)
        assert set(statuses.values()) == {201}, statuses
        wait_for(lambda: not _pending(monitor_db), timeout=120, what="the outbox to drain", proc=proc)
        with tracking_log.open("rb") as handle:
            handle.seek(before)
            calls = _calls(handle.read().decode(errors="replace"))
        assert run_logger_pids(proc.proc.pid) == [logger_pid]  # never restarted
        log_text = proc.log_path.read_text(errors="replace")
        assert f"MLflow run logger started (pid {logger_pid}" in log_text
    finally:
        proc.stop()
    n = len(batch_ids)
    # One create (tags included), one log-batch (every metric), one artifact upload and one update
    # per run, and no search by run key on a first attempt.
    assert calls["POST /api/2.0/mlflow/runs/create"] == n, calls
    assert calls["POST /api/2.0/mlflow/runs/log-batch"] == n, calls
    assert calls["POST /api/2.0/mlflow/runs/update"] == n, calls
    assert calls["POST /api/2.0/mlflow/runs/search"] == 0, calls
    uploads = sum(count for call, count in calls.items() if call.startswith("PUT /api/2.0/mlflow-artifacts/"))
    assert uploads == n, calls
    per_batch = _runs_per_batch(mlflow_client, champion)
    assert set(per_batch) == set(batch_ids)
    assert all(len(found) == 1 and found[0].info.status == "FINISHED" for found in per_batch.values())
    stored = dict(rows(monitor_db, "SELECT batch_id, mlflow_run_id FROM evaluations"))
    assert {b: found[0].info.run_id for b, found in per_batch.items()} == stored
    assert rows(monitor_db, "SELECT count(*) FROM monitoring_run_starts") == [(0,)]


def _process_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]  # R, S, T (stopped), Z (zombie, not reaped)...
    except OSError:
        return "gone"


def test_killed_run_logger_is_restarted_and_nothing_is_lost_or_doubled(tmp_path, monitor_db, tracking_server,
                                                                       champion, mlflow_client):
    proc, url = start_monitor(tmp_path, "killed", db_url=monitor_db, tracking_url=tracking_server.url,
                              model=champion, workers=2, scheduler=False)
    try:
        wait_for(lambda: len(run_logger_pids(proc.proc.pid)) == 1, timeout=60, what="the run logger",
                 proc=proc)
        (first,) = run_logger_pids(proc.proc.pid)
        os.kill(first, signal.SIGSTOP)  # runs queue while the logger is frozen
        batch_ids = [f"kill-{i}" for i in range(40)]
        statuses = _push_all(url, champion, batch_ids)
        assert set(statuses.values()) == {201}, statuses
        os.kill(first, signal.SIGCONT)
        # Kill as soon as the first run is done, polling fast: on a quiet machine the thawed logger
        # drains 40 runs in a few seconds, and the kill must land mid-stream.
        done = "SELECT count(*) FROM monitoring_runs WHERE status = 'done'"
        deadline = time.monotonic() + 120
        while rows(monitor_db, done)[0][0] < 1:
            assert time.monotonic() < deadline, f"no run logged in 120 s\n{proc.log_tail(60)}"
            time.sleep(0.02)
        os.kill(first, signal.SIGKILL)  # mid-stream: a run may be created and not finished
        assert _pending(monitor_db), "the logger drained everything before the kill; nothing tested"
        try:
            wait_for(lambda: run_logger_pids(proc.proc.pid) not in ([], [first]), timeout=120,
                     what="the master to start the run logger again", proc=proc)
        except AssertionError as exc:
            threads = {}
            for task in Path(f"/proc/{proc.proc.pid}/task").iterdir():
                try:
                    threads[task.name] = ((task / "syscall").read_text().split() or ["?"])[0]
                except OSError:
                    continue
            raise AssertionError(f"{exc}\nkilled logger {first}: {_process_state(first)}; the master's "
                                 f"children: {[(p, _process_state(p)) for p in child_pids(proc.proc.pid)]}; "
                                 f"its threads' syscalls: {threads}") from None
        wait_for(lambda: not _pending(monitor_db), timeout=180, what="the outbox to drain", proc=proc)
    finally:
        proc.stop()
    per_batch = _runs_per_batch(mlflow_client, champion)
    assert set(per_batch) == set(batch_ids)
    doubled = {b: [(r.info.run_id, r.info.status) for r in found] for b, found in per_batch.items()
               if len(found) > 1}
    assert not doubled
    assert all(found[0].info.status == "FINISHED" for found in per_batch.values())
    stored = dict(rows(monitor_db, "SELECT batch_id, mlflow_run_id FROM evaluations"))
    assert {b: found[0].info.run_id for b, found in per_batch.items()} == stored
