"""The seed's story on the whole stack, started as `make up` starts it without Docker, but on the
production parts: PostgreSQL stores, a real S3 server, authentication on, a webhook receiver and a
real Alertmanager. One module-scoped stack; the steps run in order and build on each other.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ops.stack import LocalStack, up_local
from seed_scenarios import ScenarioParams, make_batch
from tests.services.alertmanager import Alertmanager, start_alertmanager
from tests.services.process import free_port
from tests.services.receiver import Receiver

MODEL = "custom_linear_model"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = pytest.mark.e2e


class Story:
    def __init__(self, stack: LocalStack, env: dict[str, str], webhook: Receiver, am: Alertmanager) -> None:
        self.stack, self.env, self.webhook, self.am = stack, env, webhook, am
        self.tracking = f"http://127.0.0.1:{env['TRACKING_PORT']}"
        self.monitor = f"http://127.0.0.1:{env['MONITOR_PORT']}"
        self.token = env["MONITOR_API_TOKEN"]
        # Production mode: reads need the team's MLflow login (monitor.read_auth).
        self.login = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
        self.pushed: list[str] = []

    def push(self, scenario: str, seed: int, batch_id: str | None = None) -> dict:
        frame = make_batch(scenario, ScenarioParams(rows=100, seed=seed))  # type: ignore[arg-type]
        batch_id = batch_id or f"{scenario}-{seed}"
        response = requests.post(
            f"{self.monitor}/api/models/{MODEL}/batches", data=frame.to_json(orient="records"),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                     "X-Batch-Id": batch_id}, timeout=60)
        assert response.status_code in (200, 201), response.text
        if batch_id not in self.pushed:
            self.pushed.append(batch_id)
        return response.json()

    def webhook_alerts(self) -> list[tuple[str, str]]:
        """(alertname, status) for every alert in every webhook notification, in arrival order."""
        return [(a["labels"]["alertname"], a["status"]) for body in self.webhook.bodies()
                for a in body.get("alerts", [])]

    def wait_webhook(self, expected: tuple[str, str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expected in self.webhook_alerts():
                return
            time.sleep(0.3)
        raise AssertionError(f"webhook never got {expected}; got {self.webhook_alerts()}")

    def am_alerts(self, name: str, active: bool) -> list[dict]:
        return [a for a in self.am.alerts(active=str(active).lower(), inhibited="false")
                if a["labels"].get("alertname") == name and a["labels"].get("model") == MODEL]

    def wait_am(self, name: str, active: bool, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.am_alerts(name, active=True)
            if bool(found) == active:
                return
            time.sleep(0.5)
        raise AssertionError(f"Alertmanager: {name} active={active} not reached; has {self.am.alerts()}")


@pytest.fixture(scope="module")
def story(tmp_path_factory, make_database, s3_server) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("e2e")
    webhook = Receiver().start()
    am_hook = Receiver().start()
    am = start_alertmanager(root / "alertmanager", am_hook.url)
    admin_password = secrets.token_urlsafe(18)
    env = {
        "DRIFTLINE_MODE": "production",
        "TRACKING_BACKEND_URI": make_database("e2e_mlflow"),
        "TRACKING_AUTH_DB_URI": make_database("e2e_mlflow_auth"),
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{s3_server.make_bucket('e2e')}/artifacts",
        **s3_server.env,
        "TRACKING_PORT": str(free_port()), "TRACKING_AUTH": "true",
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin", "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
        "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin_password,
        "MONITOR_DATABASE_URL": make_database("e2e_monitor"), "MONITOR_PORT": str(free_port()),
        "MONITOR_API_TOKEN": secrets.token_urlsafe(24),
        "ALERT_WEBHOOK_URL": f"{webhook.url}/hook", "ALERTMANAGER_URL": am.url,
    }
    # Knobs the story needs beyond compose's names reach the processes through the environment.
    extra = {"MONITOR_SOURCE": "push", "ALERT_DELIVERY_INTERVAL_SECONDS": "1", "MONITOR_WORKERS": "2"}
    stack = LocalStack(Path(root / "data"), env)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {**extra, "MLFLOW_TRACKING_USERNAME": "admin",
                                "MLFLOW_TRACKING_PASSWORD": admin_password}.items():
                mp.setenv(name, value)
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
                mp.delenv(name, raising=False)
            started = time.monotonic()
            assert up_local(stack) == 0, "\n".join(stack.tail(n) for n in ("tracking", "trainer", "monitor"))
            print(f"e2e: stack up on production parts in {time.monotonic() - started:.1f} s")
            yield Story(stack, env, webhook, am)
    finally:
        for name in ("monitor", "tracking"):
            stack.stop_service(name)
        am.stop()
        webhook.stop()
        am_hook.stop()


def test_1_trainer_registered_the_exercise_models_with_a_champion(story):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=story.tracking)
    for name in ("lasso_regression_model", MODEL):
        assert client.get_model_version_by_alias(name, "champion").version


def test_2_clean_batch_raises_no_alert(story):
    result = story.push("clean", seed=101)
    assert result["status"] == "ok"
    assert not result["data_drift"] and not result["concept_drift"]
    time.sleep(3)
    assert story.webhook_alerts() == []


def test_3_data_drift_batch_alerts_webhook_and_alertmanager_naming_the_features(story):
    result = story.push("data_drift", seed=102)
    assert result["data_drift"] and not result["concept_drift"]
    story.wait_webhook(("data_drift", "firing"))
    firing = [a for body in story.webhook.bodies() for a in body["alerts"]
              if a["labels"]["alertname"] == "data_drift"]
    assert len(firing) == 1
    text = " ".join(str(v) for v in firing[0]["annotations"].values())
    assert "x0" in text and "x1" in text
    story.wait_am("data_drift", active=True)
    assert ("concept_drift", "firing") not in story.webhook_alerts()


def test_4_concept_drift_batch_alerts_concept_drift_only_even_across_restarts(story):
    # The tracking server restarts mid-story; the monitor keeps its cached model and carries on.
    story.stack.stop_service("tracking")
    story.stack.start_service(story.stack.specs["tracking"], timeout=180)
    # The webhook is down when the alert is due and the monitor restarts before it comes back:
    # the notification waits in the outbox and arrives once.
    story.webhook.status = 503
    result = story.push("concept_drift", seed=103)
    assert result["concept_drift"] and not result["data_drift"]
    time.sleep(3)
    story.stack.stop_service("monitor")
    story.webhook.status = 200
    story.stack.start_service(story.stack.specs["monitor"], timeout=120)
    story.wait_webhook(("concept_drift", "firing"))
    story.wait_am("concept_drift", active=True)
    alerts = story.webhook_alerts()
    assert alerts.count(("concept_drift", "firing")) == 1
    assert alerts.count(("data_drift", "firing")) == 1


def test_5_clean_batches_resolve_both_alerts(story):
    for seed in (104, 105):
        story.push("clean", seed=seed)
    story.wait_webhook(("data_drift", "resolved"))
    story.wait_webhook(("concept_drift", "resolved"))
    story.wait_am("data_drift", active=False)
    story.wait_am("concept_drift", active=False)
    alerts = story.webhook_alerts()
    assert alerts.count(("data_drift", "resolved")) == 1
    assert alerts.count(("concept_drift", "resolved")) == 1


def test_6_a_repeated_batch_is_not_evaluated_twice(story):
    story.push("clean", seed=104, batch_id="clean-104")
    evaluations = requests.get(f"{story.monitor}/api/models/{MODEL}/evaluations?limit=100", timeout=10,
                               auth=story.login).json()
    items = evaluations["evaluations"] if isinstance(evaluations, dict) else evaluations
    batch_ids = [e["batch_id"] for e in items]
    assert sorted(batch_ids) == sorted(story.pushed)


def test_7_mlflow_and_dashboard_tell_the_same_story(story):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=story.tracking)
    training = client.get_experiment_by_name("driftline-training")
    assert training and client.search_runs([training.experiment_id])
    champion = client.get_model_version_by_alias(MODEL, "champion")
    monitoring = client.get_experiment_by_name("monitoring")
    deadline = time.monotonic() + 60  # runs are logged from the monitor's outbox after each response
    while True:
        runs = client.search_runs([monitoring.experiment_id],
                                  filter_string=f"tags.`driftline.model` = '{MODEL}'")
        if len(runs) >= len(story.pushed) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(runs) == len(story.pushed)
    assert {r.data.tags["driftline.model_version"] for r in runs} == {champion.version}
    assert requests.get(f"{story.monitor}/", timeout=10).status_code == 401  # no login, no data
    overview = requests.get(f"{story.monitor}/", timeout=10, auth=story.login)
    assert overview.status_code == 200 and MODEL in overview.text
    page = requests.get(f"{story.monitor}/models/{MODEL}", timeout=10, auth=story.login)
    assert page.status_code == 200


def test_8_the_story_as_a_person_sees_it(story, browser):
    """Screenshots of the seed story for the README walkthrough, from a real browser."""
    user, password = story.login
    page = browser.new_page(viewport={"width": 1280, "height": 900},
                            http_credentials={"username": user, "password": password})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{story.monitor}/")
    assert MODEL in page.inner_text("body")
    page.screenshot(path=str(SCREENSHOTS / "story-overview.png"), full_page=True)
    page.goto(f"{story.monitor}/models/{MODEL}")
    page.wait_for_function("() => document.querySelectorAll('canvas').length > 0")
    page.screenshot(path=str(SCREENSHOTS / "story-model.png"), full_page=True)
    page.goto(f"{story.monitor}/alerts")
    body = page.inner_text("body")
    assert "data_drift" in body and "concept_drift" in body
    page.screenshot(path=str(SCREENSHOTS / "story-alerts.png"), full_page=True)
    page.close()
    assert errors == []


def test_9_concept_drift_closes_the_loop_retrain_challenger_promotion(story, browser):
    """The concept-drift alert of step 4 asked for a retraining (the demo models' policy is auto): the
    trainer ran as a one-shot job and set a challenger; drifted batches make it win, the monitor promotes
    it after the checks, and the old champion's concept-drift alert resolves."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=story.tracking)
    old = client.get_model_version_by_alias(MODEL, "champion").version
    deadline = time.monotonic() + 300
    while True:  # the retraining job of step 4 (scheduler leader, subprocess)
        found = client.get_registered_model(MODEL).aliases
        if "challenger" in found or time.monotonic() > deadline:
            break
        time.sleep(2)
    challenger = str(found["challenger"])
    tags = client.get_model_version(MODEL, challenger).tags
    assert tags["driftline.retrain.request"] and tags["driftline.retrain.champion"] == old
    for seed in range(300, 360):
        story.push("concept_drift", seed=seed)
        if str(client.get_registered_model(MODEL).aliases.get("champion")) == challenger:
            break
        time.sleep(1)  # the leader acts on decisions every 5 s
    assert str(client.get_registered_model(MODEL).aliases["champion"]) == challenger
    deadline = time.monotonic() + 30  # champion moves first, then previous: the move may be under way
    while "previous" not in client.get_registered_model(MODEL).aliases and time.monotonic() < deadline:
        time.sleep(0.5)
    assert str(client.get_registered_model(MODEL).aliases["previous"]) == old
    promoted = client.get_model_version(MODEL, challenger).tags
    assert promoted["driftline.promoted_by"].startswith("driftline-monitor (auto promotion")
    for seed in range(400, 405):  # a push may use the alias as resolved up to 5 s ago
        after = story.push("concept_drift", seed=seed)
        if after["model_version"] == challenger:
            break
        time.sleep(3)
    assert after["model_version"] == challenger and not after["concept_drift"]
    deadline = time.monotonic() + 60  # v1's second concept-drift episode, resolved by v2 replacing it
    while story.webhook_alerts().count(("concept_drift", "resolved")) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert story.webhook_alerts().count(("concept_drift", "resolved")) == 2  # step 5's and this one
    user, password = story.login
    page = browser.new_page(viewport={"width": 1280, "height": 900},
                            http_credentials={"username": user, "password": password})
    page.goto(f"{story.monitor}/models/{MODEL}")
    page.wait_for_function("() => document.querySelectorAll('canvas').length > 3")
    assert "challenger_better" in page.inner_text("#challenger-tests")
    page.screenshot(path=str(SCREENSHOTS / "story-challenger.png"), full_page=True)
