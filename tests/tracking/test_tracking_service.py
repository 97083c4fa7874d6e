"""The tracking service as a team uses it: PostgreSQL store, proxied S3 artifacts, aliases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from tests.services.tracking import REPO, clean_env, start_tracking


def test_client_without_s3_credentials_logs_registers_and_loads_by_alias(
    mlflow_client, tracking_server, s3_server, unique_name, tmp_path, monkeypatch
):
    import mlflow
    from sklearn.linear_model import Lasso

    monkeypatch.chdir(tmp_path)
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    name = unique_name("lasso")
    x = pd.DataFrame({"x0": np.arange(20.0), "x1": np.ones(20)})
    model = Lasso(alpha=0.5).fit(x, x["x0"])
    mlflow.set_experiment(unique_name("exp"))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, input_example=x.head(2)
        )
    version = mlflow_client.get_latest_versions(name)[0].version
    mlflow_client.set_registered_model_alias(name, "champion", version)

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_allclose(loaded.predict(x), model.predict(x))
    assert mlflow_client.get_run(run.info.run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
    keys = s3_server.list_keys(tracking_server.bucket, "artifacts/")
    assert any(key.endswith("MLmodel") for key in keys), keys
    assert info.model_id and not (tmp_path / "mlruns").exists()


def test_request_with_compose_service_name_as_host_is_accepted(tracking_server):
    url = f"{tracking_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    host = f"tracking:{tracking_server.port}"
    assert requests.get(url, headers={"Host": host}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Host": "tracking"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Host": "evil.example.com"}, timeout=10).status_code == 403


@pytest.fixture(scope="module")
def auth_server(session_dir, make_database, s3_server):
    bucket = s3_server.make_bucket("auth")
    settings = {
        "DRIFTLINE_MODE": "production",
        "TRACKING_BACKEND_URI": make_database("mlflow"),
        "TRACKING_AUTH_DB_URI": make_database("mlflow_auth"),
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts",
        "TRACKING_AUTH": "true",
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-random-admin-password",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "0123456789abcdef0123456789abcdef",
        **s3_server.env,
    }
    server = start_tracking(session_dir / "tracking-auth", settings, bucket=bucket)
    yield server
    server.stop()


def test_with_auth_on_anonymous_request_is_refused(auth_server):
    url = f"{auth_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(url, timeout=10).status_code == 401


def test_with_auth_on_admin_request_is_served(auth_server):
    url = f"{auth_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    response = requests.get(url, auth=("admin", "a-long-random-admin-password"), timeout=10)
    assert response.status_code == 200
    wrong = requests.get(url, auth=("admin", "not-the-password!!"), timeout=10)
    assert wrong.status_code == 401


def run_entrypoint(tmp_path: Path, timeout: float = 45, **settings: str) -> tuple[int, str, float]:
    env = clean_env(**{"DRIFTLINE_DATA_DIR": str(tmp_path), "TRACKING_PORT": "1", **settings})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tracking"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stderr + done.stdout, time.monotonic() - started


S3 = {"TRACKING_ARTIFACTS_DESTINATION": "s3://bucket/artifacts"}
BAD_CONFIGS = {
    "unreachable database": (
        {"TRACKING_BACKEND_URI": "postgresql+psycopg2://u:secretpw@127.0.0.1:1/mlflow",
         "TRACKING_DB_WAIT_SECONDS": "2"}, 3, "not reachable"),
    "malformed database url": (
        {"TRACKING_BACKEND_URI": "postgres//no-scheme"}, 2, "not a valid database URL"),
    "missing bucket credentials": (S3, 2, "AWS_ACCESS_KEY_ID"),
    "weak admin password": (
        {"TRACKING_AUTH": "true", "MLFLOW_AUTH_ADMIN_PASSWORD": "short",
         "MLFLOW_FLASK_SERVER_SECRET_KEY": "0123456789abcdef0123"}, 2, "MLFLOW_AUTH_ADMIN_PASSWORD"),
    "sqlite in production": (
        {"DRIFTLINE_MODE": "production", "TRACKING_BACKEND_URI": "sqlite:///x.db", **S3}, 2, "PostgreSQL"),
    "port out of range": ({"TRACKING_PORT": "99999"}, 2, "TRACKING_PORT"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_exits_nonzero_with_one_clear_line(case, tmp_path):
    settings, code, phrase = BAD_CONFIGS[case]
    returncode, output, elapsed = run_entrypoint(tmp_path, **settings)
    assert returncode == code, output
    assert elapsed < 30
    assert "Traceback" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("tracking: ") and phrase in last, output
    assert "secretpw" not in output


def test_wrong_s3_credentials_are_named(tmp_path, s3_server, make_database):
    env = {**s3_server.env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-key",
           "TRACKING_BACKEND_URI": f"sqlite:///{tmp_path / 'm.db'}",
           "TRACKING_ARTIFACTS_DESTINATION": "s3://somebucket/artifacts"}
    returncode, output, _ = run_entrypoint(tmp_path, **env)
    assert returncode == 2, output
    assert "AWS_SECRET_ACCESS_KEY" in output.strip().splitlines()[-1]


def test_server_hands_out_no_presigned_s3_urls(tracking_server, mlflow_client, unique_name, tmp_path,
                                               monkeypatch):
    """Clients must never need a route to the S3 endpoint the server uses (in compose: minio:9000)."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    info = requests.get(f"{tracking_server.url}/api/3.0/mlflow/server-info", timeout=10).json()
    assert info.get("multipart_downloads_enabled") is False
    assert info.get("multipart_uploads_enabled") is False
    # A client whose S3 settings point nowhere still logs and loads: every byte goes through the proxy.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nothing")
    name = unique_name("proxied")
    x = pd.DataFrame({"a": np.arange(10.0)})
    mlflow.set_experiment(unique_name("exp"))
    with mlflow.start_run():
        mlflow.sklearn.log_model(LinearRegression().fit(x, x["a"]), name="model", registered_model_name=name,
                                 input_example=x.head(2))
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_allclose(loaded.predict(x), x["a"], atol=1e-9)
