"""The closed loop on real MLflow + PostgreSQL: challengers scored on the champion's rows, the paired
sequential test, the policies, rollback, restarts and two replicas (docs/promotion.md)."""

from __future__ import annotations

import json
import threading
import time

import sqlalchemy as sa

from model_registry import aliases
from monitor.loop_models import ChallengerScore, ChallengerTest, LoopDecision
from seed_scenarios import ScenarioParams, make_batch
from tests.monitor.helpers import register_model


def push(client, name: str, scenario: str, seed: int, auth: dict[str, str], rows: int = 100):
    frame = make_batch(scenario, ScenarioParams(rows=rows, seed=seed))
    answer = client.post(f"/api/models/{name}/batches", data=frame.to_csv(index=False).encode(),
                         headers={**auth, "Content-Type": "text/csv", "X-Batch-Id": f"{scenario}-{seed}"})
    assert answer.status_code in (200, 201), answer.get_json()
    return answer.get_json()


def wait_for_version(client, name: str, version: str, auth: dict[str, str], seed: int = 100) -> dict:
    for attempt in range(6):
        after = push(client, name, "concept_drift", seed + attempt, auth)
        if after["model_version"] == version:
            break
        time.sleep(2)
    return after


def rows(app, model, *criteria):
    with app.extensions["driftline"].sessions() as session:
        return list(session.scalars(sa.select(model).where(*criteria).order_by(model.id)))


def two_versions(mlflow_client, name: str) -> tuple[str, str]:
    """v1 champion f(x) = x0 (right before concept drift), v2 challenger f(x) = x0 + 10 (right after)."""
    champion = register_model(mlflow_client, name, kind="custom", offset=0.0)
    challenger = register_model(mlflow_client, name, kind="custom", offset=10.0, alias="challenger")
    return champion, challenger


def test_challenger_is_scored_on_the_champions_rows_and_never_raises_its_alerts(
        make_app, auth, mlflow_client, unique_name):
    name = unique_name("paired")
    v1, v2 = two_versions(mlflow_client, name)
    app = make_app(MONITOR_PROMOTION_POLICY="manual")
    client = app.test_client()
    result = push(client, name, "concept_drift", 1, auth)
    assert result["model_version"] == v1 and result["concept_drift"] is True
    scores = rows(app, ChallengerScore, ChallengerScore.model_name == name)
    assert [(s.version, s.alias, s.role, s.evaluation_id) for s in scores] == [
        (v2, "challenger", "challenger", result["id"])]
    frame = make_batch("concept_drift", ScenarioParams(rows=100, seed=1))
    # Paired on the same rows: both mean squared errors recomputed here from the batch itself.
    assert abs(scores[0].champion_loss - ((frame.y - frame.x0) ** 2).mean()) < 1e-9
    assert abs(scores[0].other_loss - ((frame.y - frame.x0 - 10) ** 2).mean()) < 1e-9
    assert scores[0].relative_gain > 0.5
    alerts = client.get(f"/api/alerts?model={name}").get_json()["alerts"]
    assert alerts and {a["labels"]["version"] for a in alerts} == {v1}  # the champion's only
    api = client.get(f"/api/models/{name}/challengers").get_json()
    assert api["tests"][0]["version"] == v2 and api["tests"][0]["batches"] == 1
    assert api["scores"][0]["relative_gain"] == scores[0].relative_gain


def test_auto_policy_promotes_the_better_challenger_after_the_shared_checks(
        make_app, auth, mlflow_client, unique_name):
    name = unique_name("auto")
    v1, v2 = two_versions(mlflow_client, name)
    mlflow_client.set_registered_model_tag(name, "driftline.promotion", "auto")
    app = make_app()  # default policy notify: the model's tag says auto
    client = app.test_client()
    for seed in range(1, 30):
        push(client, name, "concept_drift", seed, auth)
        if rows(app, LoopDecision, LoopDecision.model_name == name):
            break
    [decision] = rows(app, LoopDecision, LoopDecision.model_name == name)
    assert (decision.action, decision.status, decision.to_version) == ("promote", "pending", v2)
    assert decision.evidence["e_value_better"] >= 1 / 0.05
    assert decision.evidence["batches"] == seed >= 3  # MONITOR_PROMOTION_MIN_BATCHES
    assert app.extensions["driftline"].loop.executor.run_pending() == 1
    model = mlflow_client.get_registered_model(name)
    assert model.aliases == {"champion": int(v2), "previous": int(v1)} or \
        {k: str(v) for k, v in model.aliases.items()} == {"champion": v2, "previous": v1}
    tags = mlflow_client.get_model_version(name, v2).tags
    assert tags[aliases.TAG_PROMOTED_BY].startswith("driftline-monitor (auto promotion")
    assert json.loads(tags[aliases.TAG_EVIDENCE])["checks"]["predicted_rows"] > 0
    history = aliases.alias_history(mlflow_client, name)
    assert history[-2]["alias"] == "champion" and history[-2]["evidence"]["batches"] == seed
    [done] = rows(app, LoopDecision, LoopDecision.model_name == name)
    assert done.status == "done" and done.actor == "driftline-monitor"
    # The next batches are the new champion's (a push may use the alias resolved up to 5 s ago).
    assert wait_for_version(client, name, v2, auth)["model_version"] == v2


def test_notify_policy_raises_challenger_ready_with_the_evidence(make_app, auth, mlflow_client, unique_name):
    name = unique_name("notify")
    v1, v2 = two_versions(mlflow_client, name)
    app = make_app()  # default: notify
    client = app.test_client()
    for seed in range(1, 30):
        push(client, name, "concept_drift", seed, auth)
        if rows(app, LoopDecision, LoopDecision.model_name == name):
            break
    app.extensions["driftline"].loop.executor.run_pending()
    ready = client.get(f"/api/alerts?model={name}&alertname=challenger_ready").get_json()["alerts"]
    assert len(ready) == 1 and ready[0]["state"] == "firing" and ready[0]["labels"]["version"] == v2
    assert float(ready[0]["annotations"]["e_value"]) >= 20
    assert "python -m trainer promote" in ready[0]["annotations"]["summary"]
    assert {k: str(v) for k, v in mlflow_client.get_registered_model(name).aliases.items()}["champion"] == v1


def test_manual_policy_records_the_result_and_moves_nothing(make_app, auth, mlflow_client, unique_name):
    name = unique_name("manual")
    v1, v2 = two_versions(mlflow_client, name)
    app = make_app(MONITOR_PROMOTION_POLICY="manual")
    client = app.test_client()
    for seed in range(1, 30):
        push(client, name, "concept_drift", seed, auth)
        if rows(app, LoopDecision, LoopDecision.model_name == name):
            break
    [decision] = rows(app, LoopDecision, LoopDecision.model_name == name)
    assert (decision.action, decision.status) == ("record", "done")
    assert app.extensions["driftline"].loop.executor.run_pending() == 0
    assert {k: str(v) for k, v in mlflow_client.get_registered_model(name).aliases.items()} == {
        "champion": v1, "challenger": v2}
    assert not client.get(f"/api/alerts?model={name}&alertname=challenger_ready").get_json()["alerts"]


def test_a_worse_challenger_is_judged_worse_and_never_promoted(make_app, auth, mlflow_client, unique_name):
    name = unique_name("worse")
    v1 = register_model(mlflow_client, name, kind="custom", offset=0.0)
    register_model(mlflow_client, name, kind="custom", offset=10.0, alias="challenger")
    app = make_app(MONITOR_PROMOTION_POLICY="auto")
    client = app.test_client()
    for seed in range(1, 30):
        push(client, name, "clean", seed, auth)  # on clean data the +10 challenger is far worse
        if rows(app, LoopDecision, LoopDecision.model_name == name):
            break
    [decision] = rows(app, LoopDecision, LoopDecision.model_name == name)
    assert (decision.action, decision.status) == ("reject", "done")
    assert app.extensions["driftline"].loop.executor.run_pending() == 0
    assert str(mlflow_client.get_registered_model(name).aliases["champion"]) == v1


def test_a_new_champion_worse_than_previous_is_rolled_back_with_an_alert(
        make_app, auth, mlflow_client, unique_name):
    name = unique_name("rollback")
    v1 = register_model(mlflow_client, name, kind="custom", offset=0.0)
    v2 = register_model(mlflow_client, name, kind="custom", offset=10.0, alias=None)
    aliases.make_champion(mlflow_client, name, v2, "someone@ci", "a bad pick")  # previous = v1
    app = make_app(MONITOR_ROLLBACK_BATCHES=15)
    client = app.test_client()
    for seed in range(1, 16):
        push(client, name, "clean", seed, auth)
        if rows(app, LoopDecision, LoopDecision.model_name == name):
            break
    decisions = rows(app, LoopDecision, LoopDecision.model_name == name)
    assert len(decisions) == 1, [(s.role, s.relative_gain, s.error) for s in rows(app, ChallengerScore)]
    decision = decisions[0]
    assert (decision.action, decision.from_version, decision.to_version) == ("rollback", v2, v1)
    assert app.extensions["driftline"].loop.executor.run_pending() == 1
    assert {k: str(v) for k, v in mlflow_client.get_registered_model(name).aliases.items()} == {
        "champion": v1, "previous": v2}
    assert aliases.alias_history(mlflow_client, name)[-2]["by"].startswith("driftline-monitor (auto rollback")
    fired = client.get(f"/api/alerts?model={name}&alertname=champion_rolled_back").get_json()["alerts"]
    assert len(fired) == 1 and fired[0]["state"] == "firing" and fired[0]["labels"]["severity"] == "critical"


def test_the_test_state_survives_a_restart(make_app, auth, mlflow_client, unique_name):
    name = unique_name("restart")
    two_versions(mlflow_client, name)
    first = make_app(MONITOR_PROMOTION_POLICY="manual")
    push(first.test_client(), name, "concept_drift", 1, auth)
    push(first.test_client(), name, "concept_drift", 2, auth)
    [before] = rows(first, ChallengerTest, ChallengerTest.model_name == name)
    first.extensions["driftline"].close()
    second = make_app(MONITOR_PROMOTION_POLICY="manual")  # a new process on the same database
    push(second.test_client(), name, "concept_drift", 3, auth)
    [after] = rows(second, ChallengerTest, ChallengerTest.model_name == name)
    assert after.id == before.id and after.batches == 3
    assert after.state["log_wealth_better"] > before.state["log_wealth_better"]


def test_two_replicas_never_promote_twice(make_app, auth, mlflow_client, unique_name):
    name = unique_name("replicas")
    v1, v2 = two_versions(mlflow_client, name)
    mlflow_client.set_registered_model_tag(name, "driftline.promotion", "auto")
    one, two = make_app(), make_app()
    clients = [one.test_client(), two.test_client()]
    for seed in range(1, 30):  # the replicas take turns with the batches: one test, one row
        push(clients[seed % 2], name, "concept_drift", seed, auth)
        if rows(one, LoopDecision, LoopDecision.model_name == name):
            break
    assert len(rows(one, ChallengerTest, ChallengerTest.model_name == name)) == 1
    # Both replicas act on the decision at the same moment.
    barrier = threading.Barrier(2)
    settled = []

    def act(app) -> None:
        barrier.wait()
        settled.append(app.extensions["driftline"].loop.executor.run_pending())

    threads = [threading.Thread(target=act, args=(app,)) for app in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(settled) == [0, 1]
    promotions = [h for h in aliases.alias_history(mlflow_client, name) if h["alias"] == "champion"]
    assert [h["version"] for h in promotions] == [v2]
    assert len(rows(one, LoopDecision, LoopDecision.model_name == name)) == 1


def test_a_winner_that_fails_the_checks_raises_promotion_blocked_until_the_alias_moves(
        make_app, auth, mlflow_client, unique_name):
    """A real challenger that wins on live batches (x0 + 10 under concept drift) but predicts NaN on a
    row of its own reference: the checks stop the move, and the alert says which check and why."""
    name = unique_name("blocked")
    v1 = register_model(mlflow_client, name, kind="custom", offset=0.0)
    v2 = register_model(mlflow_client, name, kind="in_range", offset=10.0, alias="challenger",
                        reference_shift=-500.0)
    mlflow_client.set_registered_model_tag(name, "driftline.promotion", "auto")
    app = make_app()
    client = app.test_client()
    for seed in range(1, 30):
        push(client, name, "concept_drift", seed, auth)
        if rows(app, LoopDecision, LoopDecision.model_name == name):
            break
    executor = app.extensions["driftline"].loop.executor
    assert executor.run_pending() == 1
    [decision] = rows(app, LoopDecision, LoopDecision.model_name == name)
    assert (decision.action, decision.status, decision.to_version) == ("promote", "failed", v2)
    assert {k: str(v) for k, v in mlflow_client.get_registered_model(name).aliases.items()} == {
        "champion": v1, "challenger": v2}  # nothing moved
    [test] = rows(app, ChallengerTest, ChallengerTest.model_name == name)
    assert test.outcome == "promotion_blocked"  # no longer on trial: a retraining may replace it
    [alert] = client.get(f"/api/alerts?model={name}&alertname=promotion_blocked").get_json()["alerts"]
    assert alert["state"] == "firing" and alert["labels"]["severity"] == "warning"
    assert alert["labels"]["version"] == v2
    notes = alert["annotations"]
    assert "finite" in notes["failed_check"] and f"models:/{name}/{v2}" in notes["failed_check"]
    assert float(notes["e_value"]) >= 20 and notes["batches"] == str(decision.evidence["batches"])
    assert "not promoted" in notes["summary"] and notes["failed_check"] in notes["summary"]
    assert executor.run_pending() == 0  # the alias has not moved: still firing
    assert client.get(f"/api/alerts?model={name}&alertname=promotion_blocked").get_json()[
        "alerts"][0]["state"] == "firing"
    v3 = register_model(mlflow_client, name, kind="custom", offset=10.0, alias="challenger")
    executor.run_pending()
    [alert] = client.get(f"/api/alerts?model={name}&alertname=promotion_blocked").get_json()["alerts"]
    assert alert["state"] == "resolved"
    assert alert["annotations"]["resolved_by"] == f"the challenger alias moved to v{v3}"
