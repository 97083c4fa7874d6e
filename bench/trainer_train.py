"""`python -m trainer train` against a fresh local-mode tracking server, the way `make up` runs it.

Each repetition starts `python -m tracking` on a new data directory (SQLite + artifact folder, the
local-mode defaults), waits for /health, then times two trainer processes: `fresh` (empty registry:
5 candidates fitted, logged, registered, validated, champions set; what `make up` does) and `rerun`
(same data again: every candidate reused). Prints wall seconds, the load average and, with
--count-calls, the REST calls the trainer made. `--ref GIT_REF` times the trainer package of that
commit instead of the working tree (the rest of the repository stays the working tree's).

    .venv/bin/python bench/trainer_train.py [--repeat 3] [--ref HEAD] [--count-calls]
                                            [--server-env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false]

`trainer_cpu` is the trainer process's CPU time, `server_cpu` the tracking server's (its whole process
group) while the trainer ran. Right after /health answers, MLflow 3.17's job runner is still starting
seven huey consumer processes (~14 CPU-seconds on this machine), which lands inside the `fresh` run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRUB = ("MLFLOW_", "TRACKING_", "DRIFTLINE_", "TRAINER_", "AWS_", "MONITOR_")

# Run the trainer with MLflow's HTTP calls counted (printed as JSON on stderr at exit).
COUNTING_WRAPPER = textwrap.dedent("""
    import atexit, json, runpy, sys, time
    import mlflow.utils.rest_utils as rest
    import mlflow.store.artifact.http_artifact_repo as http_repo
    calls, original = [], rest.http_request
    def http_request(host_creds, endpoint, method, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(host_creds, endpoint, method, *args, **kwargs)
        finally:
            calls.append((method, endpoint, time.perf_counter() - started))
    rest.http_request = http_request
    http_repo.http_request = http_request
    atexit.register(lambda: print("CALLS " + json.dumps({
        "rest": sum(1 for _, e, _ in calls if "/api/2.0/mlflow/" in e),
        "artifact": sum(1 for _, e, _ in calls if "/api/2.0/mlflow/" not in e),
        "summed_seconds": round(sum(s for *_, s in calls), 2)}), file=sys.stderr))
    import trainer
    print("TRAINER " + trainer.__file__, file=sys.stderr)
    sys.argv = ["trainer", *sys.argv[1:]]
    runpy.run_module("trainer", run_name="__main__")
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    env.update(extra)
    return env


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - local URL
            return resp.status == 200
    except OSError:
        return False


# `python -m tracking`, with `auth_cache_ttl_seconds` added to the basic-auth ini it writes (MLflow's
# cache of verified credentials; off unless set). Only to measure what that setting would change.
TRACKING_WITH_AUTH_CACHE = textwrap.dedent('''
    import sys
    import tracking.entrypoint as entrypoint
    write = entrypoint.write_auth_config
    def write_auth_config(settings):
        path = write(settings)
        path.write_text(path.read_text() + "auth_cache_ttl_seconds = %d\\n")
        return path
    entrypoint.write_auth_config = write_auth_config
    sys.exit(entrypoint.main())
''')


def start_tracking(data_dir: Path, extra_env: dict[str, str] | None = None,
                   auth_cache_ttl: int = 0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = clean_env(DRIFTLINE_DATA_DIR=str(data_dir), TRACKING_PORT=str(port), PYTHONPATH=str(REPO),
                    **(extra_env or {}))
    argv = [sys.executable, "-c", TRACKING_WITH_AUTH_CACHE % auth_cache_ttl] if auth_cache_ttl else \
        [sys.executable, "-m", "tracking"]
    with open(data_dir / "tracking.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while not healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"tracking server did not start; see {data_dir / 'tracking.log'}")
        time.sleep(0.3)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's own process group (it was started in a new session), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of /proc/PID/stat: the process group
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_trainer(url: str, pythonpath: str, count_calls: bool, cwd: Path, server_pgid: int,
                extra_env: dict[str, str] | None = None) -> dict:
    env = clean_env(MLFLOW_TRACKING_URI=url, TRAINER_ACTOR="bench", PYTHONPATH=pythonpath,
                    **(extra_env or {}))
    argv = [sys.executable, "-c", COUNTING_WRAPPER, "train"] if count_calls else \
        [sys.executable, "-m", "trainer", "train"]
    load = os.getloadavg()[0]
    server_cpu, children = group_cpu_seconds(server_pgid), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    server_cpu = group_cpu_seconds(server_pgid) - server_cpu
    if done.returncode != 0:
        raise RuntimeError(f"trainer exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    out = {"seconds": round(seconds, 2), "trainer_cpu": round(client_cpu, 2),
           "server_cpu": round(server_cpu, 2), "load_before": round(load, 2),
           "load_after": round(os.getloadavg()[0], 2)}
    for line in done.stderr.splitlines():
        if line.startswith("CALLS "):
            out["calls"] = json.loads(line[6:])
        elif line.startswith("TRAINER "):
            out["package"] = line[8:].rsplit("/", 2)[0]
    return out


def export_ref(ref: str, into: Path) -> str:
    """The trainer package at `ref` in `into`, first on PYTHONPATH before the working tree."""
    archive = subprocess.run(["git", "archive", ref, "trainer"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return f"{into}{os.pathsep}{REPO}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ref", help="time the trainer package of this git ref instead of the working tree")
    parser.add_argument("--count-calls", action="store_true", help="count the trainer's HTTP calls")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the tracking server, e.g. "
                        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (repeatable)")
    parser.add_argument("--auth", action="store_true",
                        help="basic auth on (TRACKING_AUTH=true, as the repository's .env has it)")
    parser.add_argument("--auth-cache-ttl", type=int, default=0, metavar="SECONDS",
                        help="with --auth: also set MLflow's auth_cache_ttl_seconds in the server's ini")
    args = parser.parse_args()
    server_env = dict(item.split("=", 1) for item in args.server_env)
    trainer_env: dict[str, str] = {}
    if args.auth:
        password = secrets.token_urlsafe(18)
        server_env.update(TRACKING_AUTH="true", MLFLOW_AUTH_ADMIN_USERNAME="admin",
                          MLFLOW_AUTH_ADMIN_PASSWORD=password,
                          MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_urlsafe(24))
        trainer_env.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-trainer-") as tmp:
        pythonpath = export_ref(args.ref, Path(tmp)) if args.ref else str(REPO)
        label = f"trainer at {args.ref}" if args.ref else "trainer (working tree)"
        rows = []
        for index in range(args.repeat):
            data_dir = Path(tempfile.mkdtemp(prefix="driftline-bench-tracking-"))
            started = time.perf_counter()
            proc, url = start_tracking(data_dir, server_env, args.auth_cache_ttl if args.auth else 0)
            healthy_after = round(time.perf_counter() - started, 1)
            try:
                # cwd outside the repository: `-m`/`-c` put the cwd first on sys.path.
                fresh = run_trainer(url, pythonpath, args.count_calls, data_dir, proc.pid, trainer_env)
                rerun = run_trainer(url, pythonpath, args.count_calls, data_dir, proc.pid, trainer_env)
            finally:
                stop(proc)
                shutil.rmtree(data_dir, ignore_errors=True)
            rows.append((fresh, rerun))
            print(f"{label} #{index + 1}: server healthy after {healthy_after} s; "
                  f"fresh {fresh}  rerun {rerun}", flush=True)
        for name, col in (("fresh", 0), ("rerun", 1)):
            values = [row[col]["seconds"] for row in rows]
            print(f"{label}: {name} median {statistics.median(values):.1f} s "
                  f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
