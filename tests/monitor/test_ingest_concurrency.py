"""Concurrent pushes, good and bad, with the monitor killed (SIGKILL) in the middle and restarted:
every good batch stored once with exactly one finished MLflow run, every bad one refused."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import mlflow
import pandas as pd

from tests.monitor.processes import rows, start_monitor, wait_for

TOKEN = "t" * 24
GOOD, BAD_PER_KIND, CLIENTS = 48, 4, 8
BAD_BODIES = {
    "huge-number": (b'[{"x0": ' + b"9" * 400 + b', "x1": 1.0, "y": 1.0}]', "application/json", 400),
    "duplicated": (b'{"columns": ["x0", "x0", "y"], "data": [[1.0, 2.0, 3.0]]}', "application/json", 400),
    "nan-literal": (b'[{"x0": NaN, "x1": 1.0, "y": 1.0}]', "application/json", 400),
    "bad-type": (b"x0,x1,y\nabc,1,2\n", "text/csv", 422),
}


def _good_body(i: int) -> bytes:
    frame = pd.DataFrame({"x0": [10.0 + i + j for j in range(30)], "x1": [50.0 + j % 7 for j in range(30)],
                          "y": [10.5 + i + j for j in range(30)]})
    return frame.to_csv(index=False).encode()


def _push(url: str, model: str, batch_id: str, body: bytes, content_type: str) -> int | None:
    try:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
        conn.request("POST", f"/api/models/{model}/batches", body=body,
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type,
                              "X-Batch-Id": batch_id})
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None  # the server was killed under this request


def test_mixed_concurrent_pushes_survive_a_kill_with_one_run_per_batch(tmp_path, monitor_db, tracking_server,
                                                                        champion, mlflow_client):
    jobs = [(f"good-{i}", _good_body(i), "text/csv", 201) for i in range(GOOD)]
    jobs += [(f"bad-{kind}-{i}", body, ctype, status) for kind, (body, ctype, status) in BAD_BODIES.items()
             for i in range(BAD_PER_KIND)]
    jobs.sort(key=lambda job: hash(job[0]) % 97)
    results: dict[str, list[int | None]] = {}
    lock = threading.Lock()
    kwargs = dict(db_url=monitor_db, tracking_url=tracking_server.url, model=champion, workers=2,
                  scheduler=False)
    proc, url = start_monitor(tmp_path, "first", **kwargs)
    killed = threading.Event()
    try:
        def client(mine: list) -> None:
            for batch_id, body, ctype, _ in mine:
                status = _push(url, champion, batch_id, body, ctype)
                with lock:
                    results.setdefault(batch_id, []).append(status)
                    if sum(1 for s in results.values() if s[-1] == 201) >= GOOD // 3 and not killed.is_set():
                        killed.set()
                        os.killpg(proc.proc.pid, signal.SIGKILL)  # mid-flight: requests and runs cut

        threads = [threading.Thread(target=client, args=(jobs[i::CLIENTS],)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.stop()
    assert killed.is_set()
    cut = [batch_id for batch_id, statuses in results.items() if statuses[-1] is None]
    assert cut  # some pushes were in flight when the server died

    second, url = start_monitor(tmp_path, "second", **kwargs)
    try:
        for batch_id, body, ctype, _ in jobs:  # senders retry what got no answer, with the same rows
            if batch_id in cut:
                results[batch_id].append(_push(url, champion, batch_id, body, ctype))
        wait_for(lambda: not rows(monitor_db, "SELECT id FROM monitoring_runs WHERE status = 'pending'"),
                 timeout=120, what="the monitoring run outbox to drain after the restart", proc=second)
    finally:
        second.stop()

    for batch_id, _, _, wanted in jobs:
        final = results[batch_id][-1]
        if wanted == 201 and batch_id in cut:
            assert final in (200, 201), (batch_id, results[batch_id])  # 200: stored before the kill
        else:
            assert final == wanted, (batch_id, results[batch_id])
    stored = {batch_id: (status, run_id) for batch_id, status, run_id in
              rows(monitor_db, "SELECT batch_id, status, mlflow_run_id FROM evaluations")}
    good = {batch_id for batch_id, *_ in jobs if batch_id.startswith("good-")}
    assert {b for b, (s, _) in stored.items() if s == "ok"} == good
    rejected = {f"bad-bad-type-{i}" for i in range(BAD_PER_KIND)}  # 422: kept as rejected evaluations
    assert {b for b, (s, _) in stored.items() if s != "ok"} == rejected
    assert all(stored[b][1] for b in good)

    monitoring = mlflow_client.get_experiment_by_name("monitoring")
    runs = mlflow.MlflowClient(tracking_server.url).search_runs(
        [monitoring.experiment_id], filter_string=f"tags.`driftline.model` = '{champion}'", max_results=1000)
    per_batch: dict[str, list] = {}
    for run in runs:
        per_batch.setdefault(run.data.tags["driftline.batch_id"], []).append(run)
    assert set(per_batch) == good
    assert all(len(found) == 1 and found[0].info.status == "FINISHED" for found in per_batch.values())
    assert {found[0].info.run_id for found in per_batch.values()} == {stored[b][1] for b in good}


def test_run_left_running_by_a_crash_is_finished_not_doubled(make_app, champion, auth, mlflow_client):
    app = make_app()
    monitor = app.extensions["driftline"]
    client = app.test_client()
    resp = client.post(f"/api/models/{champion}/batches", data=_good_body(1), content_type="text/csv",
                       headers={**auth, "X-Batch-Id": "crashy"})
    assert resp.status_code == 201
    evaluation_id = resp.get_json()["id"]
    deadline = time.monotonic() + 60
    while not client.get(f"/api/evaluations/{evaluation_id}").get_json()["mlflow_run_id"]:
        assert time.monotonic() < deadline, "the run was never logged"
        time.sleep(0.2)
    run_id = client.get(f"/api/evaluations/{evaluation_id}").get_json()["mlflow_run_id"]

    def crashed(run_status: str) -> None:
        # The state a kill leaves: the outbox row pending, the run created (RUNNING) or even finished.
        mlflow_client.update_run(run_id, status=run_status)
        # A kill after create_run also leaves the mark its attempt committed first (PostgreSQL here):
        # the next attempt searches by the run key instead of creating a second run.
        with monitor.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE monitoring_runs SET status = 'pending', run_id = NULL")
            conn.exec_driver_sql("UPDATE evaluations SET mlflow_run_id = NULL")
            conn.exec_driver_sql("INSERT INTO monitoring_run_starts (run_key, started_at) "
                                 "SELECT run_key, now() FROM monitoring_runs")
        assert monitor.service.runs.log_due() == 1

    for run_status in ("RUNNING", "FINISHED"):
        crashed(run_status)
        found = mlflow_client.search_runs(
            [mlflow_client.get_experiment_by_name("monitoring").experiment_id],
            filter_string=f"tags.`driftline.batch_id` = 'crashy' and tags.`driftline.model` = '{champion}'")
        assert [(r.info.run_id, r.info.status) for r in found] == [(run_id, "FINISHED")]
        assert client.get(f"/api/evaluations/{evaluation_id}").get_json()["mlflow_run_id"] == run_id
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "driftline_monitoring_runs_backlog 0.0" in metrics
