"""Every team model monitored: models registered the plain MLflow way, regression and classification."""

from __future__ import annotations

import pandas as pd

from tests.monitor.team_models import (
    TARGET,
    demand_frame,
    register_exercise_one,
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
    concept = push(client, name, demand_frame(200, 13, "concept_drift"), auth).get_json()
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
