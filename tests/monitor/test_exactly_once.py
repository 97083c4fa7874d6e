"""Two monitor processes (two gunicorn workers each) on one PostgreSQL database: each batch once."""

from __future__ import annotations

from tests.monitor.processes import rows, start_monitor, wait_for


def test_two_monitors_on_one_database_evaluate_every_batch_once(tmp_path, monitor_db, tracking_server,
                                                                champion):
    started = [start_monitor(tmp_path, f"monitor-{i}", db_url=monitor_db, tracking_url=tracking_server.url,
                             model=champion, interval=2.0, workers=2) for i in range(2)]
    try:
        done = "SELECT DISTINCT batch_id FROM evaluations WHERE status = 'ok'"
        wait_for(lambda: len(rows(monitor_db, done)) >= 5,
                 timeout=90, what="five evaluated batches", proc=started[0][0])
        per_batch = rows(monitor_db, "SELECT batch_id, count(*) FROM evaluations GROUP BY batch_id")
        assert per_batch and all(count == 1 for _, count in per_batch), per_batch
        assert all(proc.running for proc, _ in started)
        # MLflow runs are logged from the outbox after each evaluation: let it drain.
        wait_for(lambda: not rows(monitor_db, "SELECT id FROM monitoring_runs WHERE status = 'pending'"),
                 timeout=60, what="the monitoring run outbox to drain", proc=started[0][0])
    finally:
        for proc, _ in started:
            proc.stop()
    # One MLflow run per evaluation: every ok evaluation has its outbox row; logged ones distinct runs.
    unqueued = rows(monitor_db, "SELECT e.id FROM evaluations e LEFT JOIN monitoring_runs r "
                                "ON r.evaluation_id = e.id WHERE e.status = 'ok' AND r.id IS NULL")
    assert unqueued == []
    runs = rows(monitor_db, "SELECT count(*), count(DISTINCT e.mlflow_run_id) FROM evaluations e "
                            "JOIN monitoring_runs r ON r.evaluation_id = e.id WHERE r.status = 'done' "
                            "AND r.run_id = e.mlflow_run_id")
    done = rows(monitor_db, "SELECT count(*) FROM monitoring_runs WHERE status = 'done'")
    assert runs[0][0] == runs[0][1] == done[0][0] >= 5
