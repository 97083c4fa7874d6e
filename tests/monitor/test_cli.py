"""`python -m monitor evaluate`: one evaluation from the command line, as an operator would run it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.monitor.conftest import API_TOKEN
from tests.services.tracking import REPO, clean_env


def run_cli(tracking_url: str, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(DRIFTLINE_MODE="local", MLFLOW_TRACKING_URI=tracking_url, MONITOR_DATABASE_URL=db_url,
                    MONITOR_API_TOKEN=API_TOKEN, MONITOR_SCHEDULER="false")
    return subprocess.run([sys.executable, "-m", "monitor", "evaluate", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_evaluate_command_prints_the_verdict_and_stores_it(champion, tracking_server, monitor_db):
    done = run_cli(tracking_server.url, monitor_db, "--model", champion, "--scenario", "data_drift",
                   "--rows", "100", "--seed", "7")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.lstrip().startswith("{"), done.stdout[:1500]
    result = json.loads(done.stdout)
    assert result["status"] == "ok" and result["data_drift"] is True and result["concept_drift"] is False
    again = run_cli(tracking_server.url, monitor_db, "--model", champion, "--scenario", "clean",
                    "--rows", "100", "--seed", "8")
    assert again.returncode == 0 and json.loads(again.stdout)["data_drift"] is False


def test_evaluate_command_names_an_unknown_model_and_exits_nonzero(tracking_server, monitor_db, unique_name):
    done = run_cli(tracking_server.url, monitor_db, "--model", unique_name("missing"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("monitor: ")
