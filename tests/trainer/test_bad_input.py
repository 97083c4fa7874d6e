"""Bad input and failures: a clear one-line error, the right exit code, nothing registered, no alias moved."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.services.tracking import REPO, clean_env
from trainer import data, registry, training
from trainer.candidates import custom_model


def run_cli(*args: str, tracking_uri: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = clean_env(MLFLOW_TRACKING_URI=tracking_uri, TRAINER_ACTOR="pytest")
    return subprocess.run([sys.executable, "-m", "trainer", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainer: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def model_exists(client, name: str) -> bool:
    return bool(client.search_registered_models(f"name = '{name}'"))


@pytest.fixture
def table(tmp_path):
    frame = data.scenario_frames()["clean"]
    return frame, tmp_path


def test_missing_target_column_exits_2_and_registers_nothing(client, tracking_server, names, table):
    frame, tmp = table
    frame.to_csv(tmp / "t.csv", index=False)
    lasso, custom = names("lasso"), names("custom")
    proc = run_cli("train", "--data", str(tmp / "t.csv"), "--target", "label", "--lasso-model-name", lasso,
                   "--custom-model-name", custom, tracking_uri=tracking_server.url)
    assert_one_line_error(proc, 2, "target column 'label' not found", "pass --target")
    assert not model_exists(client, lasso) and not model_exists(client, custom)


def test_non_numeric_feature_column_exits_2(tracking_server, names, table):
    frame, tmp = table
    frame.assign(city="Copenhagen").to_parquet(tmp / "t.parquet")
    proc = run_cli("train", "--data", str(tmp / "t.parquet"), "--lasso-model-name", names("l"),
                   "--custom-model-name", names("c"), tracking_uri=tracking_server.url)
    assert_one_line_error(proc, 2, "non-numeric feature column(s)", "city", "convert them")


def test_empty_file_exits_2(tracking_server, names, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    proc = run_cli("train", "--data", str(tmp_path / "empty.csv"), tracking_uri=tracking_server.url)
    assert_one_line_error(proc, 2, "is empty")


def test_unreachable_tracking_server_exits_3_quickly():
    started = time.monotonic()
    proc = run_cli("train", "--alphas", "0.5", tracking_uri="http://127.0.0.1:9")
    assert_one_line_error(proc, 3, "tracking server unreachable at http://127.0.0.1:9", "MLFLOW_TRACKING_URI")
    assert time.monotonic() - started < 30


def test_model_that_fails_to_fit_exits_1_registers_nothing_and_moves_no_alias(
        client, tracking_server, names, tmp_path):
    lasso, custom, bad, experiment = names("lasso"), names("custom"), names("ridge"), names("exp")
    training.train(client, data.generated(), [custom_model(0.0, custom)], experiment=experiment)
    assert registry.alias_version(client, custom, "champion").version == "1"
    (tmp_path / "models.yaml").write_text(
        f"models:\n  - name: {bad}\n    estimator: sklearn.linear_model.Ridge\n"
        "    params: {alpha: 1.0, solver: no-such-solver}\n")
    proc = run_cli("train", "--alphas", "0.5", "--offset", "-1", "--config", str(tmp_path / "models.yaml"),
                   "--experiment", experiment, "--lasso-model-name", lasso, "--custom-model-name", custom,
                   tracking_uri=tracking_server.url)
    assert_one_line_error(proc, 1, "1 candidate(s) failed to fit", "Ridge", "no alias moved")
    assert "FAILED" in proc.stdout
    assert not model_exists(client, lasso) and not model_exists(client, bad)
    assert [v.version for v in client.search_model_versions(f"name = '{custom}'")] == ["1"]
    assert registry.alias_version(client, custom, "champion").version == "1"
    exp = client.get_experiment_by_name(experiment)
    failed = client.search_runs([exp.experiment_id], "attributes.status = 'FAILED'")
    assert len(failed) == 1 and "InvalidParameterError" in failed[0].data.tags["driftline.failure_reason"]


@pytest.mark.parametrize(("frame", "fragment"), [
    (pd.DataFrame({"x0": [1.0, float("nan")] * 10, "y": range(20)}), "missing or infinite values"),
    (pd.DataFrame({"x0": [1.0, float("inf")] * 10, "y": range(20)}), "missing or infinite values"),
    (pd.DataFrame({"x0": range(5), "y": range(5)}), "too few"),
    (pd.DataFrame({"x0": [], "y": []}), "no rows"),
    (pd.DataFrame({"y": range(20)}), "only the target column"),
])
def test_unusable_tables_raise_data_error(frame, fragment):
    with pytest.raises(data.DataError, match=fragment):
        data.prepare(frame, "y")


def test_unreadable_parquet_raises_data_error(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(data.DataError, match="cannot read .* as Parquet"):
        data.load(str(tmp_path / "broken.parquet"), "y")


# What the child counts: its threads, before and after reading the table the way the CLI does.
_THREADS_AROUND_A_READ = """
import os, sys
from trainer import data, reference  # noqa: F401 - every import the CLI has made by then
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
frame = data.read_table(sys.argv[1])
data.read_parquet(sys.argv[1])
print(before, threads(), list(frame.columns))
"""


def test_reading_a_parquet_table_starts_no_thread_that_could_abort_the_cli_at_exit(tmp_path):
    # A thread of Arrow's pool alive at interpreter exit aborted the CLI now and then (exit 134,
    # "terminate called without an active exception"); with no such thread there is no race.
    path = tmp_path / "t.parquet"
    pd.DataFrame({"x0": [1.0, 2.0], "y": [3.0, 4.0], "city": ["a", "b"]}).to_parquet(path)
    proc = subprocess.run([sys.executable, "-c", _THREADS_AROUND_A_READ, str(path)], env=clean_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after, columns = proc.stdout.split(maxsplit=2)
    assert columns.strip() == "['x0', 'y', 'city']"
    assert after == before


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.load(str(tmp_path / "nope.csv"), "y")


def test_unknown_config_estimator_is_bad_input(tmp_path, capsys):
    from trainer import cli

    (tmp_path / "m.yaml").write_text("models:\n  - {name: m, estimator: sklearn.nothing.Here}\n")
    assert cli.main(["train", "--config", str(tmp_path / "m.yaml")]) == 2
    assert "cannot be imported" in capsys.readouterr().err


def test_usage_error_exits_2(capsys):
    from trainer import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--margin", "lots"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("trainer: error: argument --margin")


def test_table_from_s3_uri_loads_with_endpoint_and_credentials(s3_server, monkeypatch):
    bucket = s3_server.make_bucket("inbox")
    body = data.scenario_frames()["clean"].to_csv(index=False).encode()
    s3_server.client().put_object(Bucket=bucket, Key="batches/ref.csv", Body=body)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    loaded = data.load(f"s3://{bucket}/batches/ref.csv", "y")
    assert loaded.rows == 100 and loaded.features == ("x0", "x1")
    assert loaded.fingerprint == data.generated().fingerprint


def test_retrain_never_sets_champion_and_refuses_a_model_it_did_not_register(tracking_server, mlflow_client,
                                                                             unique_name, table):
    frame, folder = table
    path = folder / "batches.csv"
    frame.to_csv(path, index=False)
    refused = run_cli("retrain", "--model", "any", "--data", str(path), "--alias", "champion",
                      tracking_uri=tracking_server.url)
    assert_one_line_error(refused, 2, "--alias 'champion' is not allowed")
    missing = run_cli("retrain", "--model", unique_name("ghost"), "--data", str(path),
                      tracking_uri=tracking_server.url)
    assert_one_line_error(missing, 2, "no registered model named")
