"""`make up` without Docker: local processes on embedded defaults, and `make down` leaves nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.services.process import free_port
from tests.services.tracking import REPO, clean_env


def make(target: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", target], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def group_members(pgid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def is_live(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("stack")
    tracking_port, monitor_port = free_port(), free_port()
    env = clean_env(DRIFTLINE_DATA_DIR=str(data_dir), TRACKING_PORT=str(tracking_port),
                    MONITOR_PORT=str(monitor_port), DRIFTLINE_NO_DOCKER="1")
    env.pop("PYTHONPATH")
    started = time.monotonic()
    up = make("up", env)
    elapsed = time.monotonic() - started
    yield {"env": env, "up": up, "elapsed": elapsed, "data_dir": Path(data_dir),
           "tracking": f"http://127.0.0.1:{tracking_port}", "monitor": f"http://127.0.0.1:{monitor_port}"}
    make("down", env)


def test_make_up_without_docker_says_so_and_prints_each_service_url(local_stack):
    up = local_stack["up"]
    assert up.returncode == 0, up.stdout + up.stderr
    assert "no Docker engine answered" in up.stdout
    assert f"tracking: {local_stack['tracking']}" in up.stdout.splitlines()
    assert f"monitor: {local_stack['monitor']}" in up.stdout.splitlines()
    assert "all services healthy" in up.stdout
    print(f"make up reached all services healthy in {local_stack['elapsed']:.1f} s")


def test_local_stack_serves_tracking_and_a_monitor_that_sees_the_champions(local_stack):
    assert requests.get(f"{local_stack['tracking']}/health", timeout=5).text == "OK"
    assert requests.get(f"{local_stack['monitor']}/readyz", timeout=5).status_code == 200
    models = requests.get(f"{local_stack['monitor']}/api/models", timeout=10).json()
    names = {m["name"] for m in (models["models"] if isinstance(models, dict) else models)}
    assert {"lasso_regression_model", "custom_linear_model"} <= names


def test_local_stack_keeps_everything_under_its_data_dir(local_stack):
    data_dir = local_stack["data_dir"]
    assert (data_dir / "mlflow.db").exists()
    assert any((data_dir / "artifacts").rglob("MLmodel"))
    for name in ("tracking", "monitor"):
        assert (data_dir / "run" / f"{name}.pid").exists()
        assert (data_dir / "logs" / f"{name}.log").exists()


def test_second_make_up_says_it_is_already_running(local_stack):
    again = make("up", local_stack["env"], timeout=120)
    assert again.returncode == 0
    assert "already running" in again.stdout


def pid_of(local_stack, name: str) -> int:
    return int((local_stack["data_dir"] / "run" / f"{name}.pid").read_text())


def test_make_up_heals_a_dead_tracking_server_and_leaves_the_healthy_monitor_alone(local_stack):
    env, monitor_pid = local_stack["env"], pid_of(local_stack, "monitor")
    os.killpg(pid_of(local_stack, "tracking"), signal.SIGKILL)
    time.sleep(1)
    status = make("status", env, timeout=60)
    assert status.returncode != 0
    assert "tracking: not running" in status.stdout and "monitor: healthy" in status.stdout
    healed = make("up", env, timeout=300)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert f"monitor: healthy, left alone (pid {monitor_pid})" in healed.stdout
    assert pid_of(local_stack, "monitor") == monitor_pid
    assert requests.get(f"{local_stack['tracking']}/health", timeout=5).text == "OK"
    assert make("status", env, timeout=60).returncode == 0


def test_make_up_restarts_a_service_that_runs_but_does_not_answer(local_stack):
    env, hung = local_stack["env"], pid_of(local_stack, "tracking")
    os.killpg(hung, signal.SIGSTOP)
    try:
        assert "tracking: unhealthy" in make("status", env, timeout=60).stdout
        healed = make("up", env, timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hung, signal.SIGCONT)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "tracking: running but not answering" in healed.stdout
    assert pid_of(local_stack, "tracking") != hung
    assert requests.get(f"{local_stack['tracking']}/health", timeout=5).text == "OK"


def test_make_down_leaves_no_process_behind(local_stack):
    run_dir = local_stack["data_dir"] / "run"
    pgids = [int(p.read_text()) for p in run_dir.glob("*.pid")]
    members = [pid for pgid in pgids for pid in group_members(pgid)]
    assert members, "the stack's processes should be running before make down"
    down = make("down", local_stack["env"], timeout=120)
    assert down.returncode == 0 and "stopped" in down.stdout
    alive = [pid for pid in members if is_live(pid)]
    assert alive == []
    assert not list(run_dir.glob("*.pid"))
