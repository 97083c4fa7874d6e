"""The seed's story in containers, as a user meets Driftline: `docker compose up` of the real files.

The steps run in order on one compose project and build on each other (see conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import requests

from ops.stack import REPO
from seed_scenarios import ScenarioParams, make_batch

pytestmark = pytest.mark.containers
MODEL = "custom_linear_model"


def read(stack, path: str, **kwargs) -> requests.Response:
    """A read as a team member makes it: production mode asks for the team's MLflow login."""
    auth = (stack.env["MLFLOW_AUTH_ADMIN_USERNAME"], stack.env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    return requests.get(f"{stack.url('monitor')}{path}", auth=auth, timeout=30, **kwargs)


def push(stack, scenario: str, seed: int) -> dict:
    frame = make_batch(scenario, ScenarioParams(rows=100, seed=seed))  # type: ignore[arg-type]
    response = requests.post(
        f"{stack.url('monitor')}/api/models/{MODEL}/batches",
        data=frame.to_json(orient="records"),
        headers={
            "Authorization": f"Bearer {stack.env['MONITOR_API_TOKEN']}",
            "Content-Type": "application/json",
            "X-Batch-Id": f"{scenario}-{seed}",
        },
        timeout=120,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def webhook_alerts(stack) -> list[tuple[str, str]]:
    return [
        (a["labels"]["alertname"], a["status"])
        for item in stack.received()
        if isinstance(item["body"], dict)
        for a in item["body"].get("alerts", [])
        if a["labels"].get("model") == MODEL
    ]


def wait_webhook(stack, expected: tuple[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected in webhook_alerts(stack):
            return
        time.sleep(0.5)
    raise AssertionError(f"webhook never got {expected}; got {webhook_alerts(stack)}")


def alertmanager_active(stack, name: str) -> bool:
    alerts = requests.get(
        f"{stack.url('alertmanager')}/api/v2/alerts", params={"active": "true"}, timeout=10
    ).json()
    return any(a["labels"].get("alertname") == name and a["labels"].get("model") == MODEL for a in alerts)


def wait_alertmanager(stack, name: str, active: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alertmanager_active(stack, name) == active:
            return
        time.sleep(1)
    raise AssertionError(f"Alertmanager: {name} active={active} not reached")


def admin_client(stack):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=stack.url("tracking"))


@pytest.fixture
def as_admin(stack, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.env["MLFLOW_AUTH_ADMIN_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    return admin_client(stack)


def test_01_every_service_healthy_and_the_trainer_exited_0(stack):
    states = {c["Service"]: c for c in stack.containers()}
    for service in ("postgres", "minio", "tracking", "monitor", "alertmanager", "receiver"):
        assert states[service]["State"] == "running", states[service]
    assert states["trainer"]["State"] == "exited" and states["trainer"]["ExitCode"] == 0
    # The one-shot schema step ran before tracking and exited 0 (tracking never migrates itself here).
    migrate = states["tracking-migrate"]
    assert migrate["State"] == "exited" and migrate["ExitCode"] == 0, migrate
    assert requests.get(f"{stack.url('tracking')}/health", timeout=10).text == "OK"
    assert requests.get(f"{stack.url('monitor')}/readyz", timeout=10).status_code == 200
    print(f"containers: compose up -> all healthy {stack.timings['up']:.1f} s (images built before)")


def test_02_trainer_registered_the_exercise_models_with_champions(stack, as_admin):
    for name in ("lasso_regression_model", MODEL):
        assert as_admin.get_model_version_by_alias(name, "champion").version


def test_03_host_ports_are_published_on_loopback_only(stack):
    for service, port in (("tracking", 5000), ("monitor", 8000)):
        out = subprocess.run(
            ["docker", "port", f"{stack.project}-{service}-1", str(port)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().splitlines() == [f"127.0.0.1:{stack.env[service.upper() + '_PORT']}"], out


def test_04_telemetry_is_off_in_every_driftline_image(stack):
    probe = "from mlflow.telemetry.utils import is_telemetry_disabled; assert is_telemetry_disabled()"
    for service in ("tracking", "trainer", "monitor"):
        image = f"driftline/{service}:{stack.env['DRIFTLINE_IMAGE_TAG']}"
        done = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{service}: {done.stderr[-1000:]}"


def test_05_every_dashboard_page_answers_with_its_css_and_scripts(stack):
    base = stack.url("monitor")
    push(stack, "clean", seed=201)
    assert requests.get(f"{base}/", timeout=10).status_code == 401  # no login, no data
    evaluations = read(stack, f"/api/models/{MODEL}/evaluations").json()
    items = evaluations["evaluations"] if isinstance(evaluations, dict) else evaluations
    pages = ["/", f"/models/{MODEL}", "/alerts", f"/evaluations/{items[0]['id']}"]
    assets: set[str] = set()
    for page in pages:
        response = read(stack, page)
        assert response.status_code == 200, f"{page}: {response.status_code} {response.text[:300]}"
        assets |= set(re.findall(r'(?:href|src)="(/[^"]+\.(?:css|js))"', response.text))
    assert any(a.endswith(".css") for a in assets), assets
    for asset in sorted(assets):
        response = read(stack, asset)
        assert response.status_code == 200 and response.content, asset


def test_06_data_drift_reaches_the_webhook_and_alertmanager(stack):
    result = push(stack, "data_drift", seed=202)
    assert result["data_drift"] and not result["concept_drift"]
    wait_webhook(stack, ("data_drift", "firing"))
    wait_alertmanager(stack, "data_drift", active=True)
    assert ("concept_drift", "firing") not in webhook_alerts(stack)


def test_07_restarting_monitor_and_tracking_mid_story_loses_and_doubles_nothing(stack):
    stack.compose("restart", "monitor", "tracking", timeout=300)
    stack.wait_healthy("tracking")
    stack.wait_healthy("monitor")
    result = push(stack, "concept_drift", seed=203)
    assert result["concept_drift"] and not result["data_drift"]
    wait_webhook(stack, ("concept_drift", "firing"))
    wait_alertmanager(stack, "concept_drift", active=True)
    alerts = webhook_alerts(stack)
    assert alerts.count(("data_drift", "firing")) == 1
    assert alerts.count(("concept_drift", "firing")) == 1


def test_08_clean_batches_resolve_both_alerts_once(stack):
    for seed in (204, 205):
        push(stack, "clean", seed=seed)
    wait_webhook(stack, ("data_drift", "resolved"))
    wait_webhook(stack, ("concept_drift", "resolved"))
    wait_alertmanager(stack, "data_drift", active=False)
    wait_alertmanager(stack, "concept_drift", active=False)
    alerts = webhook_alerts(stack)
    assert alerts.count(("data_drift", "resolved")) == 1
    assert alerts.count(("concept_drift", "resolved")) == 1
    assert alerts.count(("data_drift", "firing")) == 1 and alerts.count(("concept_drift", "firing")) == 1


def test_08b_concept_drift_closes_the_loop_inside_the_monitor_container(stack, as_admin):
    """Step 7's concept-drift alert asked for a retraining: the monitor ran `python -m trainer retrain`
    as a subprocess of its own container (the trainer is in its image), which registered a challenger
    with lineage; drifted batches make it win the paired test, the monitor promotes it after the checks
    (the demo models' policy is auto), and the old champion's concept-drift alert resolves."""
    old = as_admin.get_model_version_by_alias(MODEL, "champion").version
    deadline = time.monotonic() + 420  # the job's result is recorded after it set the alias
    while True:
        requests_ = [r for r in read(stack, "/api/retraining").json()["requests"] if r["model"] == MODEL]
        if requests_ and requests_[0]["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, requests_
        time.sleep(2)
    [request] = requests_
    assert (request["launcher"], request["status"]) == ("subprocess", "succeeded"), request
    challenger = str(as_admin.get_registered_model(MODEL).aliases["challenger"])
    assert request["version"] == challenger
    tags = as_admin.get_model_version(MODEL, challenger).tags
    assert tags["driftline.retrain.request"] == str(request["id"])
    assert tags["driftline.retrain.champion"] == old
    for seed in range(300, 360):
        push(stack, "concept_drift", seed=seed)
        if str(as_admin.get_registered_model(MODEL).aliases.get("champion")) == challenger:
            break
        time.sleep(1)  # the leader acts on decisions every 5 s
    found = as_admin.get_registered_model(MODEL).aliases
    assert str(found["champion"]) == challenger, read(stack, f"/api/models/{MODEL}/challengers").json()
    promoted = as_admin.get_model_version(MODEL, challenger).tags
    assert promoted["driftline.promoted_by"].startswith("driftline-monitor (auto promotion")
    for seed in range(400, 410):  # a push may use the alias as resolved up to 5 s ago
        after = push(stack, "concept_drift", seed=seed)
        if after["model_version"] == challenger:
            break
        time.sleep(3)
    assert after["model_version"] == challenger and not after["concept_drift"]
    deadline = time.monotonic() + 60  # step 7's episode resolved in step 8; this is the second one
    while webhook_alerts(stack).count(("concept_drift", "resolved")) < 2:
        assert time.monotonic() < deadline, webhook_alerts(stack)
        time.sleep(0.5)
    resolved = [
        a
        for a in read(stack, f"/api/alerts?model={MODEL}&alertname=concept_drift").json()["alerts"]
        if a["labels"]["version"] == old
    ]
    assert resolved[0]["state"] == "resolved"
    assert f"version {challenger} replaced" in resolved[0]["annotations"]["resolved_by"]
    print(f"containers: v{old} -> v{challenger} promoted inside compose")


DEMO_MODEL = "lasso_regression_model"


def test_08c_the_demo_plays_by_itself_on_the_other_exercise_model(stack, as_admin):
    """Nothing is pushed to lasso_regression_model: the .env that `make up` writes keeps the simulated
    source, so since `compose up` its rounds have followed the seed's demo cycle (clean, data drift,
    then concept drift) and closed the loop alone: concept-drift alert, retraining in the monitor's
    container, challenger, promotion, the old champion's alert resolved."""
    deadline = time.monotonic() + 420
    while True:
        done = [r for r in read(stack, "/api/retraining").json()["requests"]
                if r["model"] == DEMO_MODEL and r["status"] == "succeeded"]
        aliases = as_admin.get_registered_model(DEMO_MODEL).aliases
        if done and str(aliases.get("champion")) == done[-1]["version"] and "previous" in aliases:
            break
        assert time.monotonic() < deadline, (done, aliases)
        time.sleep(3)
    request = done[-1]
    old, new = request["champion_version"], request["version"]
    assert (request["trigger"], request["launcher"]) == ("concept_drift", "subprocess"), request
    assert str(aliases["previous"]) == old
    assert as_admin.get_model_version(DEMO_MODEL, new).tags["driftline.promoted_by"].startswith(
        "driftline-monitor (auto promotion")
    while True:
        found = read(stack, f"/api/alerts?model={DEMO_MODEL}&alertname=concept_drift").json()["alerts"]
        resolved = [a for a in found if a["labels"]["version"] == old and a["state"] == "resolved"]
        if resolved:
            break
        assert time.monotonic() < deadline, "the old champion's concept_drift never resolved"
        time.sleep(2)
    assert f"version {new} replaced" in resolved[0]["annotations"]["resolved_by"]
    evaluations = read(stack, f"/api/models/{DEMO_MODEL}/evaluations?limit=200").json()["evaluations"]
    assert evaluations and {e["source"] for e in evaluations} == {"simulated"}
    pushed = read(stack, f"/api/models/{MODEL}/evaluations?limit=200").json()["evaluations"]
    assert {e["source"] for e in pushed} == {"push"}  # monitor.ci.yaml keeps the story's model push-only
    print(f"containers: the demo closed by itself on {DEMO_MODEL}: v{old} -> v{new}")


PLAIN_CLIENT = """
import os, sys, mlflow
from sklearn.linear_model import LinearRegression
import pandas as pd
X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}); y = [0.0, 1.0, 2.0, 3.0]
mlflow.set_experiment("plain-client")
with mlflow.start_run():
    model = LinearRegression().fit(X, y)
    info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(2),
                                    registered_model_name="plain_client_model")
loaded = mlflow.pyfunc.load_model("models:/plain_client_model/1")
assert list(loaded.predict(X).round(6)) == [0.0, 1.0, 2.0, 3.0]
print("artifact uri", info.artifact_path if hasattr(info, "artifact_path") else "")
"""


def test_09_a_plain_mlflow_client_logs_and_registers_through_the_published_port(stack, tmp_path):
    # Nothing about S3 on the client; a bogus S3 endpoint and keys prove it never talks to the store.
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if not k.startswith(("AWS_", "MLFLOW_", "DRIFTLINE_", "TRACKING_", "MONITOR_"))
    }
    env.update(
        {
            "MLFLOW_TRACKING_URI": stack.url("tracking"),
            "MLFLOW_TRACKING_USERNAME": stack.env["MLFLOW_AUTH_ADMIN_USERNAME"],
            "MLFLOW_TRACKING_PASSWORD": stack.env["MLFLOW_AUTH_ADMIN_PASSWORD"],
            "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "nobody",
            "AWS_SECRET_ACCESS_KEY": "nothing",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_CLIENT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_10_the_documented_trainer_commands_work(stack):
    header = (REPO / "docker-compose.yml").read_text()
    commands = re.findall(r"^#\s+docker compose run --rm trainer (.+)$", header, re.MULTILINE)
    assert len(commands) >= 3, commands
    import shlex

    for command in commands:
        done = stack.compose("run", "--rm", "trainer", *shlex.split(command), timeout=600, check=False)
        assert done.returncode == 0, f"trainer {command}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def test_11_image_sizes_are_reported_and_the_services_share_their_layers(stack):
    tag = stack.env["DRIFTLINE_IMAGE_TAG"]
    layers: dict[str, list[str]] = {}
    for service in ("tracking", "trainer", "monitor"):
        info = subprocess.run(
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{.Size}} {{json .RootFS.Layers}}",
                f"driftline/{service}:{tag}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        size, _, layer_json = info.partition(" ")
        layers[service] = __import__("json").loads(layer_json)
        print(
            f"containers: image driftline/{service}: {int(size) / 1e6:.0f} MB, {len(layers[service])} layers"
        )
    # One Dockerfile: every layer of one service is a layer of the others (targets add metadata only).
    assert layers["tracking"] == layers["trainer"] == layers["monitor"]


def test_12_down_v_leaves_no_container_network_or_volume(stack):
    stack.compose("down", "-v", "--remove-orphans", timeout=300)
    label = f"label=com.docker.compose.project={stack.project}"
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        out = subprocess.run(
            ["docker", *kind, "-q", "--filter", label], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == "", f"docker {' '.join(kind)} still lists {out}"
