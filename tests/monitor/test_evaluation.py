"""One evaluation end to end: the seed's scenarios through the API, stored, and logged to MLflow."""

from __future__ import annotations

import json
import time

from tests.monitor.helpers import register_model

BATCH = {"rows": 100, "seed": 7}


def evaluate(client, name: str, auth: dict[str, str], scenario: str) -> dict:
    resp = client.post(f"/api/models/{name}/evaluate", json={**BATCH, "scenario": scenario}, headers=auth)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_clean_batch_finds_no_drift(make_app, champion, auth):
    client = make_app().test_client()
    result = evaluate(client, champion, auth, "clean")
    assert result["status"] == "ok"
    assert (result["data_drift"], result["concept_drift"], result["drifted_features"]) == (False, False, [])


def test_data_drift_batch_flags_shifted_features_and_no_concept_drift(make_app, champion, auth):
    client = make_app().test_client()
    result = evaluate(client, champion, auth, "data_drift")
    assert result["data_drift"] is True
    assert set(result["drifted_features"]) == {"x0", "x1"}  # the seed shifts both features by +25
    assert result["concept_drift"] is False


def test_concept_drift_batch_flags_concept_drift_and_no_data_drift(make_app, champion, auth):
    client = make_app().test_client()
    result = evaluate(client, champion, auth, "concept_drift")
    assert result["concept_drift"] is True
    assert result["data_drift"] is False
    assert result["mse"] > 2 * result["baseline_mse"]


def test_evaluation_is_readable_in_full_through_the_api(make_app, champion, auth):
    client = make_app().test_client()
    created = evaluate(client, champion, auth, "data_drift")
    full = client.get(f"/api/evaluations/{created['id']}").get_json()
    assert full["report"]["data_drift"] is True
    tests = {(r["feature"], r["test"]) for r in full["feature_results"]}
    assert ("x0", "ks") in tests and ("x1", "ks") in tests
    listed = client.get(f"/api/models/{champion}/evaluations").get_json()
    assert [e["id"] for e in listed["evaluations"]] == [created["id"]]


def test_evaluation_is_logged_as_a_run_in_the_monitoring_experiment(make_app, champion, auth, mlflow_client):
    client = make_app().test_client()
    result = evaluate(client, champion, auth, "concept_drift")
    assert result["mlflow_run_id"] is None  # logged after the response, from the outbox
    deadline = time.monotonic() + 60
    while result["mlflow_run_id"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
        result = client.get(f"/api/evaluations/{result['id']}").get_json()
    run = mlflow_client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == mlflow_client.get_experiment_by_name("monitoring").experiment_id
    assert run.data.tags["driftline.model"] == champion
    assert run.data.tags["driftline.model_version"] == "1"
    assert run.data.tags["driftline.batch_id"] == result["batch_id"]
    assert run.data.metrics["concept_drift"] == 1.0
    with open(mlflow_client.download_artifacts(run.info.run_id, "evaluation.json")) as handle:
        stored = json.load(handle)
    assert stored["report"]["concept_drift"] is True


def test_moving_the_champion_alias_is_followed_by_the_next_evaluation(make_app, champion, auth,
                                                                      mlflow_client):
    client = make_app().test_client()
    first = evaluate(client, champion, auth, "clean")
    assert first["model_version"] == "1"
    register_model(mlflow_client, champion, kind="identity", offset=10.0)  # version 2 becomes champion
    moved = evaluate(client, champion, auth, "clean")
    assert moved["model_version"] == "2"
    assert moved["mse"] > 3 * first["mse"]  # really version 2's predictions (off by +10), not a cached v1


def test_a_repeated_batch_id_is_evaluated_once(make_app, champion, auth):
    client = make_app().test_client()
    rows = [{"x0": 10.0 + i, "x1": 50.0, "y": 10.0 + i} for i in range(30)]
    headers = {**auth, "X-Batch-Id": "batch-42"}
    first = client.post(f"/api/models/{champion}/batches", json=rows, headers=headers)
    second = client.post(f"/api/models/{champion}/batches", json=rows, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["id"] == second.get_json()["id"]


def test_a_new_small_push_is_inserted_without_asking_first_and_a_failed_one_is_replaced(
        make_app, champion, auth):
    import sqlalchemy as sa

    from tests.services.process import free_port

    rows = [{"x0": 10.0 + i, "x1": 50.0, "y": 10.0 + i} for i in range(30)]
    headers = {**auth, "X-Batch-Id": "batch-7"}
    path = f"/api/models/{champion}/batches"
    # Tracking down: the push fails (503) and leaves a failed row holding the batch id.
    down = make_app(tracking_url=f"http://127.0.0.1:{free_port()}")
    failed = down.test_client().post(path, json=rows, headers=headers)
    assert failed.status_code == 503, failed.get_json()

    app = make_app()
    engine = app.extensions["driftline"].engine
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: statements.append(" ".join(statement.split())))
    client = app.test_client()
    retried = client.post(path, json=rows, headers=headers)
    assert retried.status_code == 201, retried.get_json()
    on_evaluations = [s for s in statements if "evaluations" in s.split(" WHERE")[0]]
    # No look-up before the insert; the unique key met the failed row, which is then replaced in place.
    assert on_evaluations[0].startswith("INSERT INTO evaluations"), on_evaluations
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT id, status FROM evaluations WHERE batch_id = 'batch-7'")).all()
    assert [tuple(r) for r in stored] == [(retried.get_json()["id"], "ok")]

    again = client.post(path, json=rows, headers=headers)
    assert (again.status_code, again.get_json()["id"]) == (200, retried.get_json()["id"])
    statements.clear()
    client.post(path, json=rows, headers={**auth, "X-Batch-Id": "batch-8"})
    assert not [s for s in statements if s.startswith("SELECT evaluations.status")], statements
