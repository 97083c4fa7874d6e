"""Labels arrive later, against real MLflow and PostgreSQL: unlabelled pushes, labels joined later,
the evaluation and its MLflow run completed once, the estimate's track record."""

from __future__ import annotations

import time

import pandas as pd

from seed_scenarios import ScenarioParams, make_batch
from tests.monitor.helpers import register_model


def post(client, path: str, frame: pd.DataFrame, auth: dict[str, str]):
    return client.post(path, data=frame.to_csv(index=False).encode(),
                       headers={**auth, "Content-Type": "text/csv"})


def wait_for_run(client, evaluation_id: int) -> dict:
    deadline = time.monotonic() + 60
    full = client.get(f"/api/evaluations/{evaluation_id}").get_json()
    while full["mlflow_run_id"] is None and time.monotonic() < deadline:  # logged from the outbox
        time.sleep(0.2)
        full = client.get(f"/api/evaluations/{evaluation_id}").get_json()
    assert full["mlflow_run_id"], full
    return full


def test_seed_identity_model_concept_batch_without_labels_then_labelled(make_app, auth, mlflow_client,
                                                                        unique_name):
    name = unique_name("later")
    register_model(mlflow_client, name, kind="identity")  # the seed's f(x) = x0
    client = make_app().test_client()
    batch = make_batch("concept_drift", ScenarioParams(rows=100, seed=7))
    batch.insert(0, "row_id", [f"r{i}" for i in range(len(batch))])
    inputs = batch.drop(columns=["y"])

    pushed = post(client, f"/api/models/{name}/batches?id_column=row_id&batch_id=b1", inputs, auth)
    assert pushed.status_code == 201, pushed.get_json()
    before = pushed.get_json()
    assert before["labels"] == "pending" and before["n_labelled"] == 0
    assert before["data_drift"] is False and before["prediction_drift"] is False
    assert before["concept_drift"] is None and before["mse"] is None  # unknown, not "no"
    mse = before["estimate"]["metrics"]["mse"]
    assert mse["lower"] <= mse["estimate"] <= mse["upper"]
    page = client.get(f"/evaluations/{before['id']}")
    assert b"awaiting labels" in page.data and b'id="estimate"' in page.data
    wait_for_run(client, before["id"])  # the run is logged before the labels come: late metrics path

    labels = batch[["row_id", "y"]].sample(frac=1.0, random_state=1)  # any order: joined on the id
    done = post(client, f"/api/models/{name}/batches/b1/labels?id_column=row_id", labels, auth)
    assert done.status_code == 200, done.get_json()
    after = done.get_json()
    assert after["id"] == before["id"] and after["labels"] == "received" and after["n_labelled"] == 100
    assert after["concept_drift"] is True and after["data_drift"] is False
    assert after["mse"] > 3 * after["baseline_mse"]  # y = x0 + 10 + noise
    judged = after["estimate"]["judged"]["mse"]
    assert judged["realized"] == after["mse"] and judged["covered"] is False  # the labels reveal it

    # The same labels again: the same answer; other labels: refused; nothing changes.
    again = post(client, f"/api/models/{name}/batches/b1/labels?id_column=row_id", labels, auth)
    assert again.status_code == 200 and again.get_json()["mse"] == after["mse"]
    other = labels.assign(y=labels["y"] + 1)
    conflict = post(client, f"/api/models/{name}/batches/b1/labels?id_column=row_id", other, auth)
    assert conflict.status_code == 409 and "labels are final" in conflict.get_json()["error"]

    full = wait_for_run(client, before["id"])
    deadline = time.monotonic() + 60
    run = mlflow_client.get_run(full["mlflow_run_id"])
    while ("concept_drift" not in run.data.metrics or "driftline.labels" not in run.data.tags) \
            and time.monotonic() < deadline:  # the server writes a batch's metrics, then its tags
        time.sleep(0.3)
        run = mlflow_client.get_run(full["mlflow_run_id"])
    assert run.data.metrics["concept_drift"] == 1.0
    assert run.data.metrics["mse"] == after["mse"]
    assert "estimated_mse" in run.data.metrics and "estimate_relative_error_mse" in run.data.metrics
    assert len(mlflow_client.get_metric_history(run.info.run_id, "mse")) == 1  # logged exactly once
    assert run.data.tags["driftline.labels"] == "received"

    listed = client.get(f"/api/alerts?model={name}").get_json()["alerts"]
    alerts = {a["labels"]["alertname"]: a for a in listed}
    assert alerts["concept_drift"]["state"] == "firing"


def test_partial_labels_in_row_order_are_counted_and_sender_mistakes_are_4xx(make_app, auth,
                                                                            mlflow_client, unique_name):
    name = unique_name("partial")
    register_model(mlflow_client, name, kind="identity")
    client = make_app().test_client()
    batch = make_batch("clean", ScenarioParams(rows=100, seed=8))
    pushed = post(client, f"/api/models/{name}/batches?batch_id=c1", batch[["x0", "x1"]], auth)
    assert pushed.status_code == 201, pushed.get_json()

    unknown = post(client, f"/api/models/{name}/batches/nope/labels", batch[["y"]], auth)
    assert unknown.status_code == 404
    no_target = post(client, f"/api/models/{name}/batches/c1/labels", batch[["x0"]], auth)
    assert no_target.status_code == 400 and "target column 'y'" in no_target.get_json()["error"]
    short = post(client, f"/api/models/{name}/batches/c1/labels", batch[["y"]].head(10), auth)
    assert short.status_code == 400 and "id_column" in short.get_json()["error"]
    not_numbers = post(client, f"/api/models/{name}/batches/c1/labels", batch[["y"]].astype(str) + "x", auth)
    assert not_numbers.status_code == 422
    no_id = post(client, f"/api/models/{name}/batches/c1/labels?id_column=row_id",
                 batch[["y"]].assign(row_id=range(100)), auth)
    assert no_id.status_code == 400 and "without an id column" in no_id.get_json()["error"]

    partial = batch[["y"]].copy()
    partial.loc[60:, "y"] = None  # 60 of 100 labels known
    done = post(client, f"/api/models/{name}/batches/c1/labels", partial, auth)
    assert done.status_code == 200, done.get_json()
    result = done.get_json()
    assert result["n_labelled"] == 60 and result["concept_drift"] is False
    assert result["estimate"]["judged_rows"] == 60
    assert result["report"]["labels"] == {"status": "received", "rows": 60, "of": 100, "label_drift": False}

    labelled = post(client, f"/api/models/{name}/batches?batch_id=c2", make_batch("clean"), auth).get_json()
    assert labelled["labels"] == "at_push"
    assert labelled["estimate"]["judged"]["mse"]["realized"] == labelled["mse"]
    twice = post(client, f"/api/models/{name}/batches/c2/labels", make_batch("clean")[["y"]], auth)
    assert twice.status_code == 409

    record = client.get(f"/api/models/{name}/estimate").get_json()
    assert record["labelled_batches"] == 2 and record["nominal_coverage"] == 0.9
    listed = {m["name"]: m for m in client.get("/api/models").get_json()["models"]}
    assert listed[name]["estimate"]["labelled_batches"] == 2
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'driftline_estimate_labelled_batches{{model="{name}"}} 2.0' in metrics
    assert f'driftline_estimate_interval_coverage{{model="{name}"}}' in metrics
    page = client.get(f"/models/{name}")
    assert page.status_code == 200 and b"chart-estimate" in page.data and b"Track record over 2" in page.data


def test_a_classifier_without_labels_gets_an_expected_accuracy_then_its_labels(make_app, auth, mlflow_client,
                                                                              unique_name):
    from tests.monitor.team_models import churn_frame, register_classifier

    name = unique_name("churn-later")
    register_classifier(name, churn_frame(1500, 31), "churned", ["tenure"], ["plan"])
    client = make_app().test_client()
    flipped = churn_frame(400, 34, "concept_drift")
    pushed = post(client, f"/api/models/{name}/batches?batch_id=k1", flipped.drop(columns=["churned"]), auth)
    assert pushed.status_code == 201, pushed.get_json()
    before = pushed.get_json()
    assert before["concept_drift"] is None and before["accuracy"] is None
    expected = before["estimate"]["metrics"]["accuracy"]
    assert before["estimate"]["method"] == "cbpe" and 0 < expected["lower"] <= expected["upper"] <= 1

    done = post(client, f"/api/models/{name}/batches/k1/labels", flipped[["churned"]], auth)
    assert done.status_code == 200, done.get_json()
    after = done.get_json()
    assert after["concept_drift"] is True and after["accuracy"] < 0.5 * after["baseline_accuracy"]
    judged = after["estimate"]["judged"]["accuracy"]
    assert judged["realized"] == after["accuracy"] and judged["covered"] is False  # flipped relation
    assert "churned" in after["report"]["features"]  # label drift, known only now
