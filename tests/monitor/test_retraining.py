"""Retraining on drift, on real MLflow + PostgreSQL and the real trainer as a one-shot subprocess: the
closed loop from a concept-drift alert to a promoted challenger; a failing job; one request at a time."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa

from model_registry import aliases
from monitor.loop_models import LabelledBatch, LoopDecision, RetrainingRequest
from tests.monitor.helpers import register_model
from tests.monitor.test_challengers import push, rows, wait_for_version


def aliases_of(client, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def test_concept_drift_retrains_a_challenger_that_wins_and_is_promoted(
        make_app, auth, mlflow_client, unique_name, tracking_server):
    lasso, custom = unique_name("lasso"), unique_name("custom")
    trained = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--alphas", "0.5", "--lasso-model-name", lasso,
         "--custom-model-name", custom, "--experiment", f"exp-{lasso}"],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_server.url}, capture_output=True, text=True,
        timeout=600, check=False)
    assert trained.returncode == 0, trained.stderr
    assert mlflow_client.get_registered_model(lasso).tags["driftline.promotion"] == "auto"  # a demo model
    v1 = aliases_of(mlflow_client, lasso)["champion"]
    app = make_app(MONITOR_RETRAIN="subprocess", MONITOR_RETRAIN_BATCHES=3)
    loop = app.extensions["driftline"].loop
    client = app.test_client()
    push(client, lasso, "clean", 1, auth)
    first = push(client, lasso, "concept_drift", 2, auth)
    assert first["concept_drift"] is True
    [request] = rows(app, RetrainingRequest, RetrainingRequest.model_name == lasso)
    assert (request.trigger, request.status, request.champion_version) == ("concept_drift", "requested", v1)
    [kept] = rows(app, LabelledBatch, LabelledBatch.id.in_(request.batches))
    assert kept.evaluation_id == first["id"]  # trained on the drifted batch, not the clean one before
    assert loop.launcher.run_pending() == 1
    [request] = rows(app, RetrainingRequest, RetrainingRequest.model_name == lasso)
    assert request.status == "succeeded", request.error
    v2 = request.version
    assert aliases_of(mlflow_client, lasso) == {"champion": v1, "challenger": v2}  # never champion directly
    tags = mlflow_client.get_model_version(lasso, v2).tags
    assert tags["driftline.retrain.request"] == str(request.id)
    assert tags["driftline.retrain.batches"] == str(kept.id)
    for seed in range(3, 30):
        push(client, lasso, "concept_drift", seed, auth)
        if rows(app, LoopDecision, LoopDecision.model_name == lasso):
            break
    [decision] = rows(app, LoopDecision, LoopDecision.model_name == lasso)
    assert (decision.action, decision.to_version) == ("promote", v2)
    assert loop.executor.run_pending() == 1
    assert aliases_of(mlflow_client, lasso) == {"champion": v2, "previous": v1}
    after = wait_for_version(client, lasso, v2, auth, seed=99)
    assert after["model_version"] == v2 and after["concept_drift"] is False
    alerts = client.get(f"/api/alerts?model={lasso}&alertname=concept_drift").get_json()["alerts"]
    assert [(a["labels"]["version"], a["state"]) for a in alerts] == [(v1, "resolved")]
    history = aliases.alias_history(mlflow_client, lasso)
    assert history[-2]["alias"] == "champion" and history[-2]["version"] == v2


def test_a_failing_retraining_is_recorded_and_alerted_and_nothing_moves(
        make_app, auth, mlflow_client, unique_name):
    name = unique_name("noretrain")
    v1 = register_model(mlflow_client, name, kind="custom")  # not the trainer's: no kind to refit
    app = make_app(MONITOR_RETRAIN="subprocess", MONITOR_RETRAIN_COOLDOWN_SECONDS=3600)
    loop = app.extensions["driftline"].loop
    client = app.test_client()
    push(client, name, "concept_drift", 1, auth)
    push(client, name, "concept_drift", 2, auth)  # still firing: the open request is the only one
    assert len(rows(app, RetrainingRequest, RetrainingRequest.model_name == name)) == 1
    assert loop.launcher.run_pending() == 1
    [request] = rows(app, RetrainingRequest, RetrainingRequest.model_name == name)
    assert request.status == "failed" and "exited 2" in request.error and request.active_model is None
    failed = client.get(f"/api/alerts?model={name}&alertname=retraining_failed").get_json()["alerts"]
    assert len(failed) == 1 and failed[0]["state"] == "firing"
    assert aliases_of(mlflow_client, name) == {"champion": v1}
    push(client, name, "concept_drift", 3, auth)  # within the cool-down: no new request
    assert len(rows(app, RetrainingRequest, RetrainingRequest.model_name == name)) == 1


def test_one_open_retraining_per_model_is_a_database_guarantee(make_app, mlflow_client, unique_name):
    app = make_app()
    sessions = app.extensions["driftline"].sessions
    with sessions() as session, session.begin():
        session.add(RetrainingRequest(model_name="m", active_model="m", champion_version="1", trigger="t",
                                      launcher="subprocess", status="requested", batches=[]))
    try:
        with sessions() as session, session.begin():
            session.add(RetrainingRequest(model_name="m", active_model="m", champion_version="1",
                                          trigger="t", launcher="subprocess", status="requested", batches=[]))
        raise AssertionError("a second open request was accepted")
    except sa.exc.IntegrityError:
        pass


def test_a_webhook_hands_the_request_to_an_outside_orchestrator(make_app, auth, mlflow_client, unique_name):
    import io

    import pandas as pd

    from tests.services.receiver import Receiver

    orchestrator = Receiver().start()
    try:
        name = unique_name("hook")
        register_model(mlflow_client, name, kind="custom")
        app = make_app(MONITOR_RETRAIN="webhook", MONITOR_RETRAIN_WEBHOOK_URL=f"{orchestrator.url}/jobs")
        client = app.test_client()
        drifted = push(client, name, "concept_drift", 1, auth)
        app.extensions["driftline"].loop.launcher.run_pending()
        [body] = orchestrator.wait_for(1, "/jobs")
        assert body["model"] == name and body["trigger"] == "concept_drift"
        assert body["data_url"].endswith(f"/api/retraining/{body['id']}/data")
        assert client.get(f"/api/retraining/{body['id']}/data").status_code == 401  # rows need the token
        rows_back = client.get(f"/api/retraining/{body['id']}/data", headers=auth)
        frame = pd.read_parquet(io.BytesIO(rows_back.data))
        assert len(frame) == drifted["n_rows"] and {"x0", "x1", "y"} <= set(frame.columns)
        bad = client.post(f"/api/retraining/{body['id']}", json={"status": "succeeded"}, headers=auth)
        assert bad.status_code == 400  # a success names its version; nothing recorded
        done = client.post(f"/api/retraining/{body['id']}", json={"status": "succeeded", "version": "9"},
                           headers=auth)
        assert done.status_code == 200 and done.get_json()["status"] == "succeeded"
        again = client.post(f"/api/retraining/{body['id']}", json={"status": "failed"}, headers=auth)
        assert again.status_code == 409
    finally:
        orchestrator.stop()


def test_an_open_requests_batches_are_not_pruned_while_it_waits_for_its_job(
        make_app, auth, mlflow_client, unique_name):
    """Jobs run one at a time: a request waiting behind another model's job keeps its rows however
    many drifted batches arrive meanwhile (seen on `make up` at a 2 s interval); once it is closed, they
    are pruned like any other."""
    name = unique_name("waiting")
    register_model(mlflow_client, name, kind="custom", offset=0.0)
    app = make_app(MONITOR_RETRAIN="subprocess", MONITOR_RETRAIN_BATCHES=2)
    client = app.test_client()
    push(client, name, "concept_drift", 1, auth)
    [request] = rows(app, RetrainingRequest, RetrainingRequest.model_name == name)
    for seed in range(2, 6):  # more drifted batches than MONITOR_RETRAIN_BATCHES before the job runs
        push(client, name, "concept_drift", seed, auth)
    kept = {b.id for b in rows(app, LabelledBatch, LabelledBatch.model_name == name)}
    assert set(request.batches) <= kept and len(kept) == 2 + len(request.batches)
    app.extensions["driftline"].loop.launcher.finish(request.id, None, "stopped by the test")
    push(client, name, "concept_drift", 6, auth)
    assert len(rows(app, LabelledBatch, LabelledBatch.model_name == name)) == 2
