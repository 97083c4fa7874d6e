"""Every team model monitored: models registered the plain MLflow way, regression and classification."""

from __future__ import annotations

import io
import time

import mlflow
import pandas as pd
import pytest

from tests.monitor.team_models import (
    TARGET,
    churn_frame,
    demand_frame,
    register_classifier,
    register_exercise_one,
    three_class_frame,
)


def push(client, name: str, frame: pd.DataFrame, auth: dict[str, str]):
    body = frame.to_csv(index=False).encode()
    return client.post(f"/api/models/{name}/batches", data=body,
                       headers={**auth, "Content-Type": "text/csv"})


def verdicts(result: dict) -> tuple[bool, bool]:
    return result["data_drift"], result["concept_drift"]


def test_exercise_one_model_with_its_own_target_name_is_monitored(make_app, auth, mlflow_client, unique_name):
    name = unique_name("ex1")
    register_exercise_one(name)
    client = make_app().test_client()
    clean = push(client, name, demand_frame(200, 11), auth)
    assert clean.status_code == 201, clean.get_json()
    result = clean.get_json()
    assert verdicts(result) == (False, False)
    assert result["reference"]["kind"] == "dataset"
    assert f"train-{name}" in result["reference"]["source"]
    drifted = push(client, name, demand_frame(200, 12, "data_drift"), auth).get_json()
    assert drifted["data_drift"] is True and "temp" in drifted["drifted_features"]
    # Seed 13 happened to be one of the 5 % of clean-input batches the joint input test flags.
    concept = push(client, name, demand_frame(200, 14, "concept_drift"), auth).get_json()
    assert verdicts(concept) == (False, True)
    assert concept["mse"] > 5 * concept["baseline_mse"]


def test_a_model_without_logged_data_fills_a_window_then_gets_verdicts(make_app, auth, mlflow_client,
                                                                      unique_name, tmp_path):
    name = unique_name("nodata")
    register_exercise_one(name, log_data=False)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {name}\n    target: {TARGET}\n")  # nothing in MLflow says
    app = make_app(MONITOR_REFERENCE_WINDOW_ROWS=150, MONITOR_CONFIG_FILE=config)
    client = app.test_client()
    first = push(client, name, demand_frame(100, 21), auth)
    assert first.status_code == 202, first.get_json()
    assert first.get_json()["status"] == "collecting"
    assert first.get_json()["data_drift"] is None
    listed = {m["name"]: m for m in client.get("/api/models").get_json()["models"]}
    assert listed[name]["status"] == "collecting reference, 100 of 150 rows"
    second = push(client, name, demand_frame(100, 22), auth).get_json()
    assert second["collecting"]["rows"] == 150  # the first 150 rows are the reference
    clean = push(client, name, demand_frame(200, 23), auth)
    assert clean.status_code == 201, clean.get_json()
    assert verdicts(clean.get_json()) == (False, False)
    assert clean.get_json()["reference"]["kind"] == "window"
    concept = push(client, name, demand_frame(200, 24, "concept_drift"), auth).get_json()
    assert concept["concept_drift"] is True


def test_an_sklearn_pipeline_classifier_is_monitored(make_app, auth, mlflow_client, unique_name):
    name = unique_name("churn")
    register_classifier(name, churn_frame(1500, 31), "churned", ["tenure"], ["plan"])
    client = make_app().test_client()
    clean = push(client, name, churn_frame(300, 36), auth)
    assert clean.status_code == 201, clean.get_json()
    result = clean.get_json()
    assert result["task"] == "classification"
    assert (result["data_drift"], result["concept_drift"], result["prediction_drift"]) == (False,) * 3
    perf = result["performance"]
    assert 0.75 < perf["accuracy"] <= 1 and perf["baseline_accuracy"] > 0.75
    assert {"balanced_accuracy", "macro_f1", "log_loss", "brier"} <= set(perf)
    assert set(perf["per_class_recall"]) == {"no", "yes"}
    assert result["accuracy"] == perf["accuracy"]

    shifted = push(client, name, churn_frame(300, 33, "data_drift"), auth).get_json()
    assert shifted["data_drift"] is True
    assert {"tenure", "plan", "churned"} <= set(shifted["drifted_features"])  # inputs and class mix
    assert shifted["prediction_drift"] is True

    flipped = push(client, name, churn_frame(300, 34, "concept_drift"), auth).get_json()
    assert (flipped["data_drift"], flipped["concept_drift"]) == (False, True)
    assert flipped["accuracy"] < 0.5 * flipped["baseline_accuracy"]
    full = client.get(f"/api/evaluations/{flipped['id']}").get_json()
    assert full["report"]["concept"]["excess_log_loss:welch_t"]["adjusted_drift"] is True
    deadline = time.monotonic() + 60
    while full["mlflow_run_id"] is None and time.monotonic() < deadline:  # logged from the outbox
        time.sleep(0.2)
        full = client.get(f"/api/evaluations/{flipped['id']}").get_json()
    run = mlflow_client.get_run(full["mlflow_run_id"])
    assert run.data.metrics["accuracy"] == flipped["accuracy"]
    assert "recall.yes" in run.data.metrics and "log_loss" in run.data.metrics


def test_a_three_class_classifier_reports_recall_per_class(make_app, auth, mlflow_client, unique_name):
    from sklearn.metrics import recall_score

    name = unique_name("sizes")
    train = three_class_frame(1500, 41)
    register_classifier(name, train, "size", ["x"], [])
    client = make_app().test_client()
    batch = three_class_frame(400, 42)
    result = push(client, name, batch, auth).get_json()
    model = mlflow.sklearn.load_model(f"models:/{name}/1")
    expected = recall_score(batch["size"], model.predict(batch[["x"]]), labels=["high", "low", "mid"],
                            average=None)
    recall = result["performance"]["per_class_recall"]
    assert list(recall) == ["high", "low", "mid"]  # the model's classes_
    assert [recall[c] for c in ("high", "low", "mid")] == pytest.approx(list(expected), abs=1e-12)


def test_an_uploaded_reference_replaces_the_window(make_app, auth, mlflow_client, unique_name, tmp_path):
    name = unique_name("upload")
    register_exercise_one(name, log_data=False)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {name}\n    target: {TARGET}\n")
    client = make_app(MONITOR_REFERENCE_WINDOW_ROWS=500, MONITOR_CONFIG_FILE=config).test_client()
    assert push(client, name, demand_frame(100, 51), auth).status_code == 202  # window filling
    buffer = io.BytesIO()
    demand_frame(300, 52).to_parquet(buffer)
    resp = client.put(f"/api/models/{name}/versions/1/reference", data=buffer.getvalue(),
                      headers={**auth, "Content-Type": "application/vnd.apache.parquet"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["rows"] == 300 and resp.get_json()["in_use"] is True
    result = push(client, name, demand_frame(200, 53), auth)
    assert result.status_code == 201, result.get_json()
    assert result.get_json()["reference"]["kind"] == "upload"
    assert verdicts(result.get_json()) == (False, False)


def test_bad_reference_uploads_get_a_clear_4xx_and_store_nothing(make_app, auth, mlflow_client, unique_name,
                                                                 tmp_path):
    name = unique_name("badup")
    register_exercise_one(name, log_data=False)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {name}\n    target: {TARGET}\n")
    client = make_app(MONITOR_REFERENCE_WINDOW_ROWS=100, MONITOR_CONFIG_FILE=config).test_client()
    url = f"/api/models/{name}/versions/1/reference"
    csv = {**auth, "Content-Type": "text/csv"}
    no_target = demand_frame(50, 61).drop(columns=[TARGET]).to_csv(index=False).encode()
    cases = [
        (client.put(url, data=no_target, headers=csv), 422, "demand"),
        (client.put(url, data=b"", headers=csv), 400, "empty"),
        (client.put(url, data=b"\x00\x01garbage", headers={**auth, "Content-Type": "application/parquet"}),
         400, "parquet"),
        (client.put(url, data=b"a,b\n1,2\n", headers={**auth, "Content-Type": "text/plain"}), 415,
         "Content-Type"),
        (client.put(f"/api/models/{name}/versions/99/reference", data=no_target, headers=csv), 404, "99"),
        (client.put(url, data=no_target, headers={"Content-Type": "text/csv"}), 401, "token"),
    ]
    for resp, status, word in cases:
        assert resp.status_code == status, resp.get_json()
        assert word.lower() in (resp.get_json()["error"] + str(resp.get_json()["detail"])).lower()
    # nothing was stored: the next batch still goes to the window
    assert push(client, name, demand_frame(50, 62), auth).status_code == 202


def test_without_any_reference_the_status_names_the_four_ways(make_app, auth, mlflow_client, unique_name,
                                                              tmp_path):
    name = unique_name("noref")
    register_exercise_one(name, log_data=False)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {name}\n    target: {TARGET}\n")
    client = make_app(MONITOR_REFERENCE_WINDOW_ROWS=0, MONITOR_CONFIG_FILE=config).test_client()
    resp = push(client, name, demand_frame(50, 71), auth)
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["detail"]["status"] == "no_reference"
    error = body["detail"]["error"]
    for way in ("reference/train.parquet", "mlflow.log_input", "/versions/1/reference",
                "MONITOR_REFERENCE_WINDOW_ROWS"):
        assert way in error
    assert "register the model" not in error


def test_the_simulated_source_feeds_only_models_with_its_columns(make_app, mlflow_client, unique_name,
                                                                 caplog):
    from tests.monitor.helpers import register_model

    demo, team = unique_name("demo"), unique_name("team")
    register_model(mlflow_client, demo)
    register_exercise_one(team)
    app = make_app()
    scheduler = app.extensions["driftline"].scheduler
    with caplog.at_level("INFO", logger="monitor.scheduler"):
        assert scheduler._evaluate_model(team, 7) == []
        fed = scheduler._evaluate_model(demo, 7)
    assert [o.status for o in fed] == ["ok"]
    assert any(team in r.getMessage() and "not fed simulated batches" in r.getMessage()
               for r in caplog.records)


def test_a_registered_model_tag_or_the_config_opts_a_champion_out(make_app, mlflow_client, unique_name,
                                                                  tmp_path):
    name, other = unique_name("optout"), unique_name("cfgout")
    register_exercise_one(name)
    register_exercise_one(other)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {other}\n    monitor: false\n")
    scheduler = make_app(MONITOR_CONFIG_FILE=config).extensions["driftline"].scheduler
    assert name in scheduler.models() and other not in scheduler.models()
    mlflow_client.set_registered_model_tag(name, "driftline.monitor", "false")
    assert name not in scheduler.models()


def test_the_cli_uploads_a_reference_for_a_version(make_app, auth, mlflow_client, unique_name, tmp_path,
                                                   tracking_server, monitor_db):
    import subprocess
    import sys

    from tests.monitor.conftest import API_TOKEN
    from tests.services.tracking import REPO, clean_env

    name = unique_name("cliref")
    register_exercise_one(name, log_data=False)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {name}\n    target: {TARGET}\n")
    path = tmp_path / "reference.csv"
    demand_frame(300, 81).to_csv(path, index=False)
    env = clean_env(DRIFTLINE_MODE="local", MLFLOW_TRACKING_URI=tracking_server.url,
                    MONITOR_DATABASE_URL=monitor_db, MONITOR_API_TOKEN=API_TOKEN, MONITOR_SCHEDULER="false",
                    MONITOR_CONFIG_FILE=str(config))
    done = subprocess.run([sys.executable, "-m", "monitor", "reference", "--model", name, "--version", "1",
                           str(path)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"rows": 300' in done.stdout
    client = make_app(MONITOR_CONFIG_FILE=config).test_client()
    result = push(client, name, demand_frame(200, 82), auth).get_json()
    assert result["reference"]["kind"] == "upload" and result["status"] == "ok"


def test_the_overview_shows_the_window_and_each_models_trend(make_app, auth, mlflow_client, unique_name,
                                                             tmp_path):
    filling, watched = unique_name("filling"), unique_name("watched")
    register_exercise_one(filling, log_data=False)
    register_exercise_one(watched)
    config = tmp_path / "monitor.yaml"
    config.write_text(f"models:\n  - name: {filling}\n    target: {TARGET}\n")
    client = make_app(MONITOR_REFERENCE_WINDOW_ROWS=150, MONITOR_CONFIG_FILE=config).test_client()
    push(client, filling, demand_frame(100, 91), auth)
    for seed, scenario in ((92, "clean"), (93, "data_drift")):
        assert push(client, watched, demand_frame(150, seed, scenario), auth).status_code == 201
    page = client.get("/").get_data(as_text=True)
    assert "collecting reference, 100 of 150 rows" in page
    assert "Recent error and drift" in page and "charts.js" in page
    assert "MSE / baseline" in page and "drifted share" in page


def test_a_dataset_without_a_loadable_source_still_names_the_target(make_app, auth, mlflow_client,
                                                                    unique_name):
    """The issue's exact exercise: from_pandas(train, targets=...) with no source= records a code source
    (no data), but its schema has the one non-input column: the target. The window does the rest."""
    name = unique_name("codesrc")
    register_exercise_one(name, loadable=False)
    client = make_app(MONITOR_REFERENCE_WINDOW_ROWS=100).test_client()
    first = push(client, name, demand_frame(100, 101), auth)
    assert first.status_code == 202, first.get_json()  # 'demand' accepted: no tag, no config
    assert first.get_json()["collecting"]["message"].startswith("collecting reference, 100 of 100 rows")
    result = push(client, name, demand_frame(200, 102, "data_drift"), auth).get_json()
    assert result["data_drift"] is True and result["reference"]["kind"] == "window"


def test_the_joint_test_settings_come_from_the_environment(make_app, auth, mlflow_client, unique_name,
                                                           tmp_path):
    name, other = unique_name("jointenv"), unique_name("jointyaml")
    register_exercise_one(name)
    register_exercise_one(other)
    config = tmp_path / "monitor.yaml"  # a model's drift settings override the environment's
    config.write_text(f"models:\n  - name: {other}\n"
                      "    drift: {joint_test: energy_mean, permutations: 99}\n")
    app = make_app(MONITOR_JOINT_TEST="energy", MONITOR_PERMUTATIONS=199, MONITOR_JOINT_MAX_ROWS=900,
                   MONITOR_PERMUTATION_SEED=5, MONITOR_CONFIG_FILE=config)
    client = app.test_client()
    for model, test, permutations in ((name, "energy", 199), (other, "energy_mean", 99)):
        result = push(client, model, demand_frame(100, 31, "data_drift"), auth).get_json()
        report = client.get(f"/api/evaluations/{result['id']}", headers=auth).get_json()["report"]
        assert list(report["joint"]) == [test], report["joint"]
        assert f"{permutations} permutations" in report["joint"][test]["note"]
        assert f"inputs:{test}" in report["verdicts"]["data_drift"]["drivers"]
    # 400 reference rows + 600 > 900 pooled rows: the per-feature path
    big = push(client, name, demand_frame(600, 32, "data_drift"), auth).get_json()
    stored = client.get(f"/api/evaluations/{big['id']}", headers=auth).get_json()
    assert stored["report"]["joint"] == {}
