"""Several tracking servers on one PostgreSQL serve one team: one schema, migrated once, shared users.

Two `python -m tracking` processes are started at the same moment on empty databases with auth on
(the race MLflow's own start-up would lose); a client alternating between them must see one team.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa

from tests.services.process import ManagedProcess, free_port, http_ok
from tests.services.tracking import REPO, clean_env, configure_team_client, tracking_env
from tracking.schema import MIGRATION_LOCK_KEY

ADMIN = ("admin", "a-long-random-admin-password")
SECRET_KEY = "shared-session-secret-0123456789abcdef"


def scalar(url: str, sql: str):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def team_settings(make_database, s3_server, bucket: str) -> dict[str, str]:
    return {
        "DRIFTLINE_MODE": "production",
        "TRACKING_BACKEND_URI": make_database("mlflow"),
        "TRACKING_AUTH_DB_URI": make_database("mlflow_auth"),
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts",
        "TRACKING_AUTH": "true",
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": SECRET_KEY,
        **s3_server.env,
    }


@pytest.fixture(scope="module")
def replicas(session_dir, make_database, s3_server):
    """Two servers started together on empty databases (the bucket does not exist yet either)."""
    bucket = f"replicas-{int(time.time() * 1000) % 10**9}"
    settings = team_settings(make_database, s3_server, bucket)
    servers = []
    for index in range(2):
        port = free_port()
        workdir = session_dir / f"tracking-replica-{index}"
        env = tracking_env(workdir, port, **settings)
        process = ManagedProcess(f"tracking-{index}", [sys.executable, "-m", "tracking"],
                                 workdir / "tracking.log", env=env, cwd=REPO)
        servers.append((f"http://127.0.0.1:{port}", process))
    for _, process in servers:  # both before either is waited for: they race for the empty database
        process.start()
    try:
        for url, process in servers:
            process.wait_until(lambda url=url: http_ok(f"{url}/health"), timeout=180, what="healthy")
        yield {"urls": [url for url, _ in servers], "processes": [p for _, p in servers],
               "settings": settings, "bucket": bucket}
    finally:
        for _, process in servers:
            process.stop()


def test_both_replicas_are_healthy_on_one_schema_migrated_once(replicas):
    settings = replicas["settings"]
    for url in replicas["urls"]:
        assert requests.get(f"{url}/health", timeout=10).status_code == 200
    from mlflow.store.db.utils import _get_latest_schema_revision

    store, users = settings["TRACKING_BACKEND_URI"], settings["TRACKING_AUTH_DB_URI"]
    assert scalar(store, "SELECT count(*) FROM alembic_version") == 1
    assert scalar(store, "SELECT version_num FROM alembic_version") == _get_latest_schema_revision()
    assert scalar(users, "SELECT count(*) FROM alembic_version_auth") == 1
    assert scalar(users, "SELECT count(*) FROM users WHERE username = 'admin' AND is_admin") == 1
    logs = [process.log_path.read_text() for process in replicas["processes"]]
    both = "\n".join(logs)
    # They raced: one found the other migrating and waited for the lock, then found the schema done.
    assert sum("another process is migrating" in log for log in logs) == 1, both
    # Exactly one replica migrated each database.
    assert len(re.findall(r"schema of \S+ migrated to", both)) == 1, both
    assert len(re.findall(r"auth store \S+ migrated to", both)) == 1, both
    assert len(re.findall(r"schema of \S+ is at head", both)) == 1, both
    for log in logs:
        assert "Traceback" not in log and "IntegrityError" not in log and "already exists" not in log, log


class RoundRobin:
    """A team client behind a round-robin balancer: each call goes to the next replica."""

    def __init__(self, urls: list[str]) -> None:
        self._next = itertools.cycle(urls)

    def url(self) -> str:
        return next(self._next)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url()}{path}", timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.url()}{path}", timeout=30, **kwargs)


def test_round_robin_client_sees_the_same_runs_and_models(replicas, monkeypatch, tmp_path, unique_name):
    import mlflow
    from sklearn.linear_model import LinearRegression

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    first, second = replicas["urls"]
    client_a = configure_team_client(monkeypatch, first)  # mlflow's fluent API logs through replica A
    name = unique_name("replicated")
    x = pd.DataFrame({"a": np.arange(10.0)})
    mlflow.set_experiment(unique_name("exp"))
    with mlflow.start_run() as run:
        mlflow.log_metric("rmse", 0.25)
        mlflow.sklearn.log_model(LinearRegression().fit(x, x["a"]), name="model", registered_model_name=name,
                                 input_example=x.head(2))
    client_b = mlflow.MlflowClient(tracking_uri=second)
    client_b.set_registered_model_alias(name, "champion", "1")

    clients = itertools.cycle([client_a, client_b])
    for _ in range(4):  # every read on alternating replicas sees the same team
        client = next(clients)
        assert client.get_run(run.info.run_id).data.metrics == {"rmse": 0.25}
        assert client.get_model_version_by_alias(name, "champion").version == "1"
        assert [m.name for m in client.search_registered_models(f"name = '{name}'")] == [name]
    mlflow.set_tracking_uri(second)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")  # artifacts logged via A, read via B
    np.testing.assert_allclose(loaded.predict(x), x["a"], atol=1e-9)


def test_user_created_on_one_replica_logs_in_on_the_other(replicas, unique_name):
    balancer = RoundRobin(replicas["urls"])
    user = (unique_name("analyst").replace("-", "_"), "analyst-password-0123")
    created = balancer.post("/api/2.0/mlflow/users/create", auth=ADMIN,
                            json={"username": user[0], "password": user[1]})
    assert created.status_code == 200, created.text
    for _ in range(4):
        response = balancer.get("/api/2.0/mlflow/experiments/search?max_results=1", auth=user)
        assert response.status_code == 200, response.text
        assert balancer.get("/api/2.0/mlflow/users/get", params={"username": user[0]},
                            auth=ADMIN).json()["user"]["username"] == user[0]
    wrong = balancer.get("/api/2.0/mlflow/experiments/search?max_results=1", auth=(user[0], "not-it-at-all"))
    assert wrong.status_code == 401


def test_signup_form_from_one_replica_is_accepted_by_the_other(replicas, unique_name):
    """The CSRF token is signed with MLFLOW_FLASK_SERVER_SECRET_KEY: only a shared secret accepts it."""
    first, second = replicas["urls"]
    session = requests.Session()
    session.auth = ADMIN
    form = session.get(f"{first}/signup", timeout=30)
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    username = unique_name("signup").replace("-", "_")
    form_data = {"csrf_token": token, "username": username, "password": "signup-password-0123"}
    posted = session.post(f"{second}/api/2.0/mlflow/users/create-ui", timeout=30, data=form_data)
    assert posted.status_code == 200 and "Successfully signed up" in posted.text, posted.text
    check = requests.get(f"{first}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30,
                         auth=(username, "signup-password-0123"))
    assert check.status_code == 200
    forged = session.post(f"{second}/api/2.0/mlflow/users/create-ui", timeout=30,
                          data={"csrf_token": token[:-4] + "AAAA", "username": username + "x",
                                "password": "signup-password-0123"})
    assert forged.status_code == 400


# --- the one-shot step and its lock --------------------------------------------------------------------

def run_tracking(args: list[str], settings: dict[str, str], workdir: Path, timeout: float = 180,
                 ) -> subprocess.Popen[str]:
    env = clean_env(DRIFTLINE_DATA_DIR=str(workdir), TRACKING_PORT=str(free_port()), **settings)
    return subprocess.Popen([sys.executable, "-m", "tracking", *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# A session of this database blocked on the migration key (bigint keys: high half classid, low half objid).
WAITING_FOR_OUR_LOCK = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    f" AND classid::bigint = {MIGRATION_LOCK_KEY >> 32} AND objid::bigint = {MIGRATION_LOCK_KEY & 0xFFFFFFFF}"
)


def test_migrate_waits_for_the_advisory_lock_then_migrates_once(make_database, s3_server, tmp_path):
    bucket = s3_server.make_bucket("migrate")
    settings = team_settings(make_database, s3_server, bucket)
    store = settings["TRACKING_BACKEND_URI"]
    holder = sa.create_engine(store, poolclass=sa.pool.NullPool)
    with holder.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
        migrate = run_tracking(["migrate"], settings, tmp_path / "a")
        deadline = time.monotonic() + 60
        # Held elsewhere (another replica migrating): the step must wait, touching nothing.
        while time.monotonic() < deadline and not scalar(store, WAITING_FOR_OUR_LOCK):
            assert migrate.poll() is None, migrate.stdout.read()
            time.sleep(0.5)
        assert migrate.poll() is None, migrate.stdout.read()
        assert scalar(store, "SELECT to_regclass('alembic_version') IS NULL")
        conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
    holder.dispose()
    output, _ = migrate.communicate(timeout=180)
    assert migrate.returncode == 0, output
    assert "another process is migrating" in output and "migrated to" in output
    assert scalar(store, "SELECT count(*) FROM alembic_version") == 1
    again = run_tracking(["migrate"], settings, tmp_path / "b")
    output, _ = again.communicate(timeout=180)
    assert again.returncode == 0 and "nothing to migrate" in output and "migrated to" not in output, output


def test_server_without_migration_waits_for_the_schema_then_names_the_step(make_database, tmp_path):
    settings = {"TRACKING_BACKEND_URI": make_database("mlflow"), "TRACKING_MIGRATE_ON_START": "false",
                "TRACKING_DB_WAIT_SECONDS": "3"}
    server = run_tracking([], settings, tmp_path)
    output, _ = server.communicate(timeout=120)
    assert server.returncode == 3, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("tracking: cannot start:") and "python -m tracking migrate" in last, output
    assert scalar(settings["TRACKING_BACKEND_URI"], "SELECT to_regclass('alembic_version') IS NULL")


def test_unknown_command_is_refused_with_usage(tmp_path):
    done = run_tracking(["upgrade"], {}, tmp_path)
    output, _ = done.communicate(timeout=60)
    assert done.returncode == 2 and "usage: python -m tracking [serve|migrate]" in output


def test_server_without_migration_starts_once_the_one_shot_step_is_done(make_database, tmp_path):
    """The Kubernetes order: replicas start with the migration Job and wait for it, never migrating."""
    settings = {
        "TRACKING_BACKEND_URI": make_database("mlflow"), "TRACKING_AUTH_DB_URI": make_database("mlflow_auth"),
        "TRACKING_AUTH": "true", "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "MLFLOW_FLASK_SERVER_SECRET_KEY": SECRET_KEY,
    }
    port = free_port()
    env = tracking_env(tmp_path / "server", port, **settings, TRACKING_MIGRATE_ON_START="false")
    env["TRACKING_DB_WAIT_SECONDS"] = "240"
    server = ManagedProcess("tracking-waiting", [sys.executable, "-m", "tracking"],
                            tmp_path / "server" / "tracking.log", env=env, cwd=REPO).start()
    try:
        server.wait_until(lambda: "waiting for the migration step" in server.log_tail(), timeout=120,
                          what="waiting for the migration")
        migrate = run_tracking(["migrate"], settings, tmp_path / "migrate")
        output, _ = migrate.communicate(timeout=240)
        assert migrate.returncode == 0, output
        server.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=180, what="healthy")
        response = requests.get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
                                auth=ADMIN, timeout=30)
        assert response.status_code == 200, response.text
        log = server.log_path.read_text()
        assert "migrated to" not in log and "nothing to migrate" not in log, log
    finally:
        server.stop()
