"""Labels arrive later, against real MLflow and PostgreSQL: unlabelled pushes, labels joined later,
the evaluation and its MLflow run completed once, the estimate's track record."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

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


def test_labels_are_scored_against_the_reference_in_force_when_the_batch_was_pushed(
        make_app, auth, mlflow_client, unique_name, tmp_path):
    import io

    from tests.monitor.team_models import TARGET, demand_frame, register_exercise_one

    pinned, control = unique_name("pinned"), unique_name("control")
    config = tmp_path / "monitor.yaml"
    config.write_text("models:\n" + "".join(f"  - name: {n}\n    target: {TARGET}\n"
                                            for n in (pinned, control)))
    client = make_app(MONITOR_CONFIG_FILE=config).test_client()

    def upload(name: str, frame: pd.DataFrame) -> dict:
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        resp = client.put(f"/api/models/{name}/versions/1/reference", data=buffer.getvalue(),
                          headers={**auth, "Content-Type": "application/vnd.apache.parquet"})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    batch = demand_frame(300, 71)
    for name in (pinned, control):  # the same model, reference, batch and labels
        register_exercise_one(name, log_data=False)
        upload(name, demand_frame(400, 52))
        pushed = post(client, f"/api/models/{name}/batches?batch_id=w1", batch.drop(columns=[TARGET]), auth)
        assert pushed.status_code == 201 and pushed.get_json()["labels"] == "pending", pushed.get_json()
    # Between push and labels, the pinned model gets another reference (the relation moved by +20):
    # scored against it, the batch would show concept drift and another baseline.
    upload(pinned, demand_frame(400, 53, "concept_drift"))
    newer = post(client, f"/api/models/{pinned}/batches?batch_id=w2", batch, auth).get_json()
    assert newer["concept_drift"] is True  # the new reference is in force for new batches

    results = {}
    for name in (pinned, control):
        done = post(client, f"/api/models/{name}/batches/w1/labels", batch[[TARGET]], auth)
        assert done.status_code == 200, done.get_json()
        results[name] = done.get_json()
    got, want = results[pinned], results[control]
    assert got["concept_drift"] is False and want["concept_drift"] is False
    for key in ("mse", "mae", "baseline_mse", "baseline_mae"):
        assert got[key] == want[key], key
    assert got["report"]["concept"] == want["report"]["concept"]
    assert got["estimate"]["judged"] == want["estimate"]["judged"]
    assert got["reference"]["kind"] == "upload"
    assert got["reference"]["source"] != newer["reference"]["source"]  # the upload of push time


def test_a_classifiers_label_drift_found_with_the_labels_revises_the_data_drift_verdict(
        make_app, auth, mlflow_client, unique_name):
    import numpy as np

    from tests.monitor.team_models import churn_frame, register_classifier

    name = unique_name("prior")
    register_classifier(name, churn_frame(1500, 31), "churned", ["tenure"], ["plan"])
    client = make_app().test_client()
    batch = churn_frame(400, 35)  # inputs as in the reference: no data drift at push
    pushed = post(client, f"/api/models/{name}/batches?batch_id=p1", batch.drop(columns=["churned"]), auth)
    assert pushed.status_code == 201, pushed.get_json()
    before = pushed.get_json()
    assert before["data_drift"] is False and "churned" not in before["drifted_features"]

    # Prior shift: 85 % churn, where the reference has about half.
    shifted = np.where(np.random.default_rng(3).random(len(batch)) < 0.85, "yes", "no")
    done = post(client, f"/api/models/{name}/batches/p1/labels",
                pd.DataFrame({"churned": shifted}), auth)
    assert done.status_code == 200, done.get_json()
    after = done.get_json()
    assert after["id"] == before["id"]
    assert after["report"]["labels"]["label_drift"] is True
    assert after["report"]["labels"]["revised"] == ["data_drift"]
    assert after["data_drift"] is True and "churned" in after["drifted_features"]
    verdict = after["report"]["verdicts"]["data_drift"]
    assert verdict["detected"] is True and verdict["revised_by_labels"] is True
    assert "churned" in verdict["features"]
    listed = client.get(f"/api/alerts?model={name}").get_json()["alerts"]
    alerts = {a["labels"]["alertname"]: a for a in listed}
    assert alerts["data_drift"]["state"] == "firing"  # the rules saw the revised verdict
    assert "churned" in alerts["data_drift"]["annotations"]["drifted_features"]

    # Labels without prior shift on another batch: the push-time verdict stands.
    clean = churn_frame(400, 36)
    post(client, f"/api/models/{name}/batches?batch_id=p2", clean.drop(columns=["churned"]), auth)
    kept = post(client, f"/api/models/{name}/batches/p2/labels", clean[["churned"]], auth).get_json()
    assert kept["report"]["labels"]["label_drift"] is False and kept["data_drift"] is False
    assert "revised" not in kept["report"]["labels"]


def test_on_sqlite_labels_arriving_while_the_run_is_logged_reach_the_run(make_app, auth, mlflow_client,
                                                                         unique_name, tmp_path):
    import threading

    from monitor.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    upgrade(url)
    name = unique_name("race")
    register_model(mlflow_client, name, kind="identity")
    app = make_app(db_url=url)
    client = app.test_client()
    registry = app.extensions["driftline"].service.runs.registry
    entered, go = threading.Event(), threading.Event()
    log_evaluation = registry.log_evaluation

    def slow_log_evaluation(**kwargs):  # the tracking server answering slowly: the race's window
        entered.set()
        assert go.wait(60)
        return log_evaluation(**kwargs)

    registry.log_evaluation = slow_log_evaluation
    batch = make_batch("concept_drift", ScenarioParams(rows=100, seed=7))
    pushed = post(client, f"/api/models/{name}/batches?batch_id=r1", batch.drop(columns=["y"]), auth)
    assert pushed.status_code == 201, pushed.get_json()
    assert entered.wait(60)  # the logger is logging this run now
    done = post(client, f"/api/models/{name}/batches/r1/labels", batch[["y"]], auth)
    assert done.status_code == 200, done.get_json()
    go.set()

    full = wait_for_run(client, pushed.get_json()["id"])
    deadline = time.monotonic() + 60
    run = mlflow_client.get_run(full["mlflow_run_id"])
    while "driftline.labels" not in run.data.tags and time.monotonic() < deadline:
        time.sleep(0.3)
        run = mlflow_client.get_run(full["mlflow_run_id"])
    assert run.data.metrics["concept_drift"] == 1.0
    assert run.data.metrics["mse"] == done.get_json()["mse"]
    assert len(mlflow_client.get_metric_history(run.info.run_id, "mse")) == 1


def test_challengers_in_place_at_push_are_scored_when_the_labels_come(make_app, auth, mlflow_client,
                                                                      unique_name):
    import sqlalchemy as sa

    from monitor.loop_models import ChallengerScore, ChallengerTest

    name = unique_name("later-paired")
    v1 = register_model(mlflow_client, name, kind="custom", offset=0.0)  # f(x) = x0
    v2 = register_model(mlflow_client, name, kind="custom", offset=10.0, alias="challenger")  # x0 + 10
    app = make_app(MONITOR_PROMOTION_POLICY="manual")
    client = app.test_client()
    batch = make_batch("concept_drift", ScenarioParams(rows=100, seed=5))  # y = x0 + 10 + noise
    pushed = post(client, f"/api/models/{name}/batches?batch_id=q1", batch.drop(columns=["y"]), auth)
    assert pushed.status_code == 201 and pushed.get_json()["model_version"] == v1, pushed.get_json()
    evaluation_id = pushed.get_json()["id"]

    def scores() -> list:
        with app.extensions["driftline"].sessions() as session:
            return list(session.scalars(sa.select(ChallengerScore).where(ChallengerScore.model_name == name)))

    assert scores() == []  # no labels, nothing to pair yet
    mlflow_client.delete_registered_model_alias(name, "challenger")  # gone by the time labels come

    partial = batch[["y"]].copy()
    partial.loc[80:, "y"] = None  # 80 labelled rows
    done = post(client, f"/api/models/{name}/batches/q1/labels", partial, auth)
    assert done.status_code == 200, done.get_json()
    [score] = scores()
    assert (score.version, score.alias, score.role, score.evaluation_id) == (v2, "challenger", "challenger",
                                                                            evaluation_id)
    labelled = batch.head(80)
    assert score.n_rows == 80
    assert abs(score.champion_loss - ((labelled.y - labelled.x0) ** 2).mean()) < 1e-9
    assert abs(score.other_loss - ((labelled.y - labelled.x0 - 10) ** 2).mean()) < 1e-9
    with app.extensions["driftline"].sessions() as session:
        test = session.scalars(sa.select(ChallengerTest).where(ChallengerTest.model_name == name)).one()
    assert test.version == v2 and test.batches == 1 and score.test_id == test.id  # the sequential test moved
    # The same labels again change nothing: no second score.
    assert post(client, f"/api/models/{name}/batches/q1/labels", partial, auth).status_code == 200
    assert len(scores()) == 1


def test_a_big_unlabelled_batch_keeps_its_rows_encoded_beside_the_drift_tests(make_app, auth, mlflow_client,
                                                                               unique_name, monkeypatch,
                                                                               monitor_db):
    """Above ``IN_MEMORY_ROWS`` the kept rows are encoded in slices in a thread while the batch is scored
    and, on PostgreSQL, committed as ``kept_row_parts`` that the evaluation claims (monitor/labels.py
    ``keep_rows_early``); a repeat push leaves no slices behind; the labels complete the batch from
    the slices, in order, and delete them."""
    import threading

    import sqlalchemy as sa

    from monitor import labels as labels_module
    from monitor.models import BatchLabels, KeptRowPart

    monkeypatch.setattr(labels_module, "IN_MEMORY_ROWS", 50)  # this 100-row batch counts as big
    monkeypatch.setattr(labels_module, "PART_ROWS", 30)  # ... kept in four slices
    encoded_in: list[str] = []
    encode = labels_module.write_rows

    def recording(*args, **options):  # noqa: ANN002, ANN003
        encoded_in.append(threading.current_thread().name)
        return encode(*args, **options)

    monkeypatch.setattr(labels_module, "write_rows", recording)
    engine = sa.create_engine(monitor_db)

    def parts() -> list[tuple[int, int | None]]:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(
                sa.select(KeptRowPart.seq, KeptRowPart.batch_labels_id).order_by(KeptRowPart.seq))]

    name = unique_name("later-big")
    register_model(mlflow_client, name, kind="identity")
    client = make_app().test_client()
    batch = make_batch("concept_drift", ScenarioParams(rows=100, seed=11))
    batch.insert(0, "row_id", [f"r{i}" for i in range(len(batch))])

    pushed = post(client, f"/api/models/{name}/batches?id_column=row_id&batch_id=big",
                  batch.drop(columns=["y"]), auth)
    assert pushed.status_code == 201, pushed.get_json()
    assert pushed.get_json()["labels"] == "pending"
    assert len(encoded_in) == 4 and all(n.startswith("kept-rows-encoder") for n in encoded_in)
    with engine.connect() as connection:
        kept = connection.execute(sa.select(BatchLabels.id, BatchLabels.data)).one()
    assert kept.data is None and parts() == [(seq, kept.id) for seq in range(4)]

    again = post(client, f"/api/models/{name}/batches?id_column=row_id&batch_id=big",
                 batch.drop(columns=["y"]), auth)  # evaluated again, then found stored: its slices go
    assert again.status_code == 200 and again.get_json()["id"] == pushed.get_json()["id"]
    assert len(encoded_in) == 8 and parts() == [(seq, kept.id) for seq in range(4)]

    labels = batch[["row_id", "y"]].sample(frac=1.0, random_state=2)
    done = post(client, f"/api/models/{name}/batches/big/labels?id_column=row_id", labels, auth)
    assert done.status_code == 200, done.get_json()
    after = done.get_json()
    assert after["n_labelled"] == 100 and after["concept_drift"] is True
    assert after["mse"] > 3 * after["baseline_mse"]
    identity = batch["x0"].to_numpy()  # f(x) = x0: the slices joined in order give the exact error
    assert after["mse"] == pytest.approx(float(np.mean((batch["y"].to_numpy() - identity) ** 2)), rel=1e-12)
    assert parts() == []  # done with: only the labels' digest stays
    engine.dispose()
