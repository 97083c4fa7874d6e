"""The push path end to end: `POST /api/models/<name>/batches` against a real `python -m monitor serve`.

For each revision (``before``: the code this branch started from, exported with ``git archive``;
``after``: this working tree) and each database (SQLite, PostgreSQL) it starts the monitor as deployed
(gunicorn with the revision's default worker model), warms it up, then measures
  - latency p50/p99 and throughput for 1 and 8 clients pushing 100-row and 10,000-row CSV batches,
  - /healthz latency (p50, max) probed every 50 ms while 8 clients push,
  - one 1,000,000 x 20 Parquet batch: push time and the worker's peak memory above its resident set
    before (VmHWM reset through /proc/PID/clear_refs), against the decoded batch (rows x columns x 8 B).
Real services throughout: PostgreSQL, SeaweedFS, MLflow tracking server (tests/services). Each run gets
a new database (SQLite file or PostgreSQL database). ``--estimator`` first fits the small model's
label-free estimator (unlabelled warm-up pushes), the state of a restarted server whose preload warms
the model, or of any model that has had an unlabelled push: every push then computes its estimate.

    .venv/bin/python bench/push_path.py [--before REF] [--pushes 40] [--databases sqlite,postgres]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "push_path.json"
TOKEN = "bench-token-0123456789abcdef"
BIG_ROWS, BIG_FEATURES = 1_000_000, 20
EXTRA_ENV: dict[str, str] = {}
BIG_LABELLED = True  # --big-unlabelled: the 1M push (and its warm-up) without the target column
LOADS: list[tuple[int, int]] = []
# --estimator: the small model's version gets its label-free estimator before the loads (as a restarted
# server's preload or any unlabelled push gives it), so every push pays its estimate.
ESTIMATOR = False


@contextmanager
def tracking_on_s3(work: Path, db_name: str) -> Iterator[Any]:
    """The push benches' tracking server: MLflow on a fresh PostgreSQL database, artifacts in a
    SeaweedFS bucket, this process's MLflow client pointed at it; all stopped and dropped after."""
    import mlflow

    from tests.services import postgres
    from tests.services.seaweedfs import CHECKSUM_ENV, start_s3_server
    from tests.services.tracking import start_tracking

    s3 = start_s3_server(work / "s3")
    tracking_db = postgres.create_database(db_name)
    bucket = s3.make_bucket("bench")
    tracking = start_tracking(work / "tracking", {
        "DRIFTLINE_MODE": "local", "TRACKING_BACKEND_URI": tracking_db,
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts", **s3.env},
        bucket=bucket, db_url=tracking_db)
    try:
        os.environ.update(CHECKSUM_ENV)
        mlflow.set_tracking_uri(tracking.url)
        yield tracking
    finally:
        tracking.stop()
        s3.stop()
        postgres.drop_database(tracking_db)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=None,
                        help="git ref of the baseline (default: merge-base with main)")
    parser.add_argument("--pushes", type=int, default=40, help="pushes per 1-client load (8 clients: 4x)")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--revisions", default="before,after")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--estimator", action="store_true",
                        help="fit the small model's label-free estimator before the loads: every push "
                             "then computes its estimate (a restarted server's state)")
    parser.add_argument("--big-unlabelled", action="store_true",
                        help="push the 1M batch without its target (labels later: its rows are kept)")
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON figures go")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra monitor setting, e.g. --env MONITOR_WORKERS=4 --env MONITOR_THREADS=1")
    parser.add_argument("--loads", default="1x100,1x10000,8x100,8x10000",
                        help="client x rows loads to run, in order")
    args = parser.parse_args()
    global EXTRA_ENV, LOADS, BIG_LABELLED, ESTIMATOR
    EXTRA_ENV = dict(item.split("=", 1) for item in args.env)
    LOADS = [tuple(int(x) for x in load.split("x")) for load in args.loads.split(",")]
    BIG_LABELLED = not args.big_unlabelled
    ESTIMATOR = args.estimator

    import mlflow

    from tests.services import postgres

    work = Path(tempfile.mkdtemp(prefix="driftline-push-bench-"))
    before_ref = args.before or _git("merge-base", "HEAD", "main")
    databases: list[str] = []
    results: list[dict] = []
    try:
        with tracking_on_s3(work, "benchmlflow") as tracking:
            client = mlflow.MlflowClient(tracking.url)
            small, big = "bench-push-2", "bench-push-20"
            _register(client, small, features=2)
            if not args.skip_big:
                _register(client, big, features=BIG_FEATURES)
            for revision in args.revisions.split(","):
                code = REPO if revision == "after" else _export(before_ref, work / "before")
                for kind in args.databases.split(","):
                    if kind == "postgres":
                        db_url = postgres.create_database("benchpush")
                        databases.append(db_url)
                    else:  # a new file each run, as PostgreSQL gets a new database: no history
                        db_url = f"sqlite:///{work / f'{revision}-{len(results)}-monitor.db'}"
                    label = f"{revision}/{kind}"
                    print(f"\n== {label} ({'working tree' if code == REPO else before_ref[:10]})", flush=True)
                    results += _run_revision(label, code, db_url, tracking.url, work, small,
                                             None if args.skip_big else big,
                                             args.pushes, tracking.process.proc.pid)
    finally:
        for url in databases:
            postgres.drop_database(url)
    _print(results)
    target = Path(args.results)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"before": before_ref, "results": results}, indent=1) + "\n")
    return 0


# --- one server ---------------------------------------------------------------------------------------

def _run_revision(label: str, code: Path, db_url: str, tracking_url: str, work: Path, small: str,
                  big: str | None, pushes: int, tracking_pid: int) -> list[dict]:
    from tests.services.process import ManagedProcess, free_port, http_ok
    from tests.services.tracking import clean_env

    port = free_port()
    env = clean_env(
        DRIFTLINE_MODE="local", DRIFTLINE_DATA_DIR=str(work / label.replace("/", "-")),
        MONITOR_DATABASE_URL=db_url, MLFLOW_TRACKING_URI=tracking_url, MONITOR_HOST="127.0.0.1",
        MONITOR_PORT=str(port), MONITOR_SCHEDULER="false", MONITOR_API_TOKEN=TOKEN,
        MONITOR_MAX_BATCH_BYTES=str(512 * 1024 * 1024), MONITOR_SOURCE="push", **EXTRA_ENV)
    env["PYTHONPATH"] = str(code)
    log_path = work / f"{label.replace('/', '-')}.log"
    argv = [sys.executable, "-m", "monitor", "serve"]
    proc = ManagedProcess(label, argv, log_path, env=env, cwd=code).start()
    url = f"127.0.0.1:{port}"
    out: list[dict] = []
    try:
        proc.wait_until(lambda: http_ok(f"http://{url}/healthz"), timeout=120, what="serving /healthz")
        bodies = {rows: _csv(rows) for rows in {100, 10_000, *(r for _, r in LOADS)}}
        workers = _children(proc.proc.pid)
        # Every worker loads the model before the clock starts: a cold worker's first push waits for
        # the download and imports (5-15 s on this loaded machine) with every thread pushing that
        # model, /healthz included when they are all of them. Those were the earlier "stalls".
        for _ in range(20):
            _load(url, small, bodies[100], clients=8, pushes=16)
            if _loaded_in(log_path, small) >= set(workers):
                break
        if ESTIMATOR:
            # Unlabelled pushes over 8 connections: each worker fits (or reads) the version's
            # estimator now, and holds it for the labelled pushes of the loads.
            unlabelled = _csv_without_target(bodies[100])
            for _ in range(3):
                _load(url, small, unlabelled, clients=8, pushes=8)
        _drain_outbox(url)
        # The MLflow run logger side process (MONITOR_RUN_LOGGER=process; none on older code) and the
        # tracking server: their CPU is reported beside the workers'.
        loggers = _run_loggers(proc.proc.pid)
        tracking_pids = _group(tracking_pid)
        started_cpu, total_pushes = _cpu_seconds(workers), 0
        started_side = _cpu_seconds(loggers), _cpu_seconds(tracking_pids)
        counts = {(1, 100): pushes, (1, 10_000): pushes // 2, (8, 100): pushes * 4, (8, 10_000): pushes * 2}
        for clients, rows in LOADS:
            count = counts.get((clients, rows), pushes)
            each = [_cpu_seconds([pid]) for pid in workers]
            machine, client = _machine_cpu(), time.process_time()
            figures = _load(url, small, bodies[rows], clients=clients, pushes=count)
            spent = [_cpu_seconds([pid]) - before for pid, before in zip(workers, each, strict=True)]
            # CPU time of the gunicorn workers per push (pushes, plus the MLflow run outbox they feed):
            # less sensitive to the machine's load than the wall-clock figures.
            figures["worker_cpu_ms_per_push"] = round(1000 * sum(spent) / count, 1)
            # What else the two cores did meanwhile: this load generator, the database, the run logger,
            # other tenants (steal). At 150 pushes/s on 2 cores everything together has 13.3 ms a push.
            busy, steal = (after - before for after, before in zip(_machine_cpu(), machine, strict=True))
            # How evenly the workers shared the load (keep-alive connections stay with one worker).
            figures["worker_cpu_share"] = [round(x / max(1e-9, sum(spent)), 2) for x in spent]
            figures["client_cpu_ms_per_push"] = round(1000 * (time.process_time() - client) / count, 1)
            figures["machine_cpu_ms_per_push"] = round(1000 * busy / count, 1)
            figures["steal_ms_per_push"] = round(1000 * steal / count, 1)
            figures["load_average"] = round(os.getloadavg()[0], 1)
            figures.update(run=label, clients=clients, rows=rows, env=EXTRA_ENV, estimator=ESTIMATOR)
            total_pushes += count
            out.append(figures)
            print(json.dumps(figures), flush=True)
        drained = _drain_outbox(url)
        if drained is not None:
            # Everything the workers spent on these pushes, their MLflow runs logged afterwards included.
            logger_cpu = _cpu_seconds(loggers) - started_side[0]
            tracking_cpu = _cpu_seconds(tracking_pids) - started_side[1]
            worker_cpu = _cpu_seconds(workers) - started_cpu
            out.append({"run": label, "outbox_drain_seconds": drained,
                        "worker_cpu_ms_per_push_with_run": round(1000 * worker_cpu / total_pushes, 1),
                        "run_logger_cpu_ms_per_push": round(1000 * logger_cpu / total_pushes, 1),
                        "monitor_cpu_ms_per_push_with_run": round(
                            1000 * (worker_cpu + logger_cpu) / total_pushes, 1),
                        "tracking_cpu_ms_per_push": round(1000 * tracking_cpu / total_pushes, 1),
                        "load_average": [round(x, 1) for x in os.getloadavg()]})
            print(json.dumps(out[-1]), flush=True)
        if big is not None:
            figures = _big_push(url, big, proc.proc.pid, log_path)
            figures.update(run=label)
            out.append(figures)
            print(json.dumps(figures), flush=True)
    finally:
        proc.stop()
    return out


def _load(url: str, model: str, body: bytes, *, clients: int, pushes: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_client = [pushes // clients + (1 if i < pushes % clients else 0) for i in range(clients)]
    health: list[float] = []
    done = threading.Event()

    def client(count: int) -> None:
        conn = http.client.HTTPConnection(url, timeout=120)
        for _ in range(count):
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv",
                       "X-Batch-Id": f"bench-{uuid.uuid4().hex}"}
            t0 = time.perf_counter()
            conn.request("POST", f"/api/models/{model}/batches", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        conn.close()

    def probe() -> None:
        while not done.is_set():
            conn = http.client.HTTPConnection(url, timeout=60)
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            health.append(time.perf_counter() - t0)
            conn.close()
            done.wait(0.05)

    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    prober = threading.Thread(target=probe)
    started = time.perf_counter()
    prober.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    done.set()
    prober.join()
    latencies.sort()
    return {"pushes": len(latencies), "statuses": statuses, "seconds": round(wall, 2),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "pushes_per_s": round(len(latencies) / wall, 1),
            "healthz_p50_ms": round(1000 * statistics.median(health), 1) if health else None,
            "healthz_max_ms": round(1000 * max(health), 1) if health else None}


def _drain_outbox(url: str, timeout: float = 600.0) -> float | None:
    """Seconds until the MLflow run outbox is empty after the loads (None: no outbox, runs were
    logged in the requests)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        conn = http.client.HTTPConnection(url, timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        name = "driftline_monitoring_runs_backlog "
        backlog = [line for line in text.splitlines() if line.startswith(name)]
        if not backlog:
            return None
        if float(backlog[0].split()[1]) == 0:
            return round(time.perf_counter() - started, 1)
        time.sleep(0.5)
    return None


def _big_push(url: str, model: str, master_pid: int, log_path: Path) -> dict:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.uniform(0, 100, (BIG_ROWS, BIG_FEATURES)),
                         columns=[f"f{i}" for i in range(BIG_FEATURES)])
    if BIG_LABELLED:
        frame["y"] = frame["f0"] + rng.normal(0, 5, BIG_ROWS)
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    body = buffer.getvalue()
    decoded = frame.shape[0] * frame.shape[1] * 8
    del frame
    # Warm the worker(s) on this model first (model load and reference profile are not the push path).
    warm = _parquet_rows(model, 200)
    workers = _children(master_pid)
    for _ in range(20 * len(workers)):
        _post(url, model, warm, "application/vnd.apache.parquet")
        if _loaded_in(log_path, model) >= set(workers):
            break
    base = {}
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        base[pid] = _status_kb(pid)["VmRSS"]
    t0, cpu = time.perf_counter(), _cpu_seconds(workers)
    status = _post(url, model, body, "application/vnd.apache.parquet")
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds(workers) - cpu
    peak = max(_status_kb(pid)["VmHWM"] - base[pid] for pid in workers) * 1024
    return {"rows": BIG_ROWS, "columns": BIG_FEATURES + int(BIG_LABELLED), "labelled": BIG_LABELLED,
            "body_mb": round(len(body) / 2**20, 1),
            "status": status, "seconds": round(seconds, 2), "worker_cpu_seconds": round(cpu, 2),
            "load_average": round(os.getloadavg()[0], 1), "peak_extra_mb": round(peak / 2**20),
            "decoded_mb": round(decoded / 2**20), "peak_x_decoded": round(peak / decoded, 2)}


def _post(url: str, model: str, body: bytes, content_type: str) -> int:
    conn = http.client.HTTPConnection(url, timeout=300)
    conn.request("POST", f"/api/models/{model}/batches", body=body,
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type,
                          "X-Batch-Id": f"bench-{uuid.uuid4().hex}"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


# --- data and models ----------------------------------------------------------------------------------

def _csv_without_target(body: bytes) -> bytes:
    """The same CSV batch without its target column ``y``: a push whose labels come later."""
    import pandas as pd

    return pd.read_csv(io.BytesIO(body)).drop(columns=["y"]).to_csv(index=False).encode()


def _csv(rows: int) -> bytes:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    frame = pd.DataFrame({"x0": rng.uniform(0, 100, rows), "x1": rng.uniform(0, 100, rows)})
    frame["y"] = frame["x0"] + rng.normal(0, 5, rows)
    return frame.to_csv(index=False).encode()


def _parquet_rows(model: str, rows: int) -> bytes:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(rows)
    columns = [f"f{i}" for i in range(BIG_FEATURES)]
    frame = pd.DataFrame(rng.uniform(0, 100, (rows, BIG_FEATURES)), columns=columns)
    if BIG_LABELLED:  # unlabelled warm-up pushes also fit the version's label-free estimator
        frame["y"] = frame["f0"]
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def _register(client, name: str, features: int) -> None:  # noqa: ANN001 - MlflowClient
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(42)
    columns = ["x0", "x1"] if features == 2 else [f"f{i}" for i in range(features)]
    frame = pd.DataFrame(rng.uniform(0, 100, (2_000, features)), columns=columns)
    frame["y"] = frame[columns[0]] + rng.normal(0, 5, len(frame))
    train, holdout = frame.iloc[:1_600], frame.iloc[1_600:]
    mlflow.set_experiment(f"bench-{name}")
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        for part, file in ((train, "train.parquet"), (holdout, "holdout.parquet")):
            part.to_parquet(Path(tmp) / file)
            mlflow.log_artifact(str(Path(tmp) / file), artifact_path="reference")
        model = LinearRegression().fit(train[columns], train["y"])
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                        signature=infer_signature(train[columns], train["y"].to_numpy()))
    version = str(info.registered_model_version)
    client.set_model_version_tag(name, version, "driftline.target", "y")
    client.set_model_version_tag(name, version, "driftline.features", ",".join(columns))
    client.set_registered_model_alias(name, "champion", version)


# --- plumbing -----------------------------------------------------------------------------------------

def _git(*argv: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *argv], check=True, capture_output=True,
                          text=True).stdout.strip()


def _export(ref: str, target: Path) -> Path:
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _run_loggers(master_pid: int) -> list[int]:
    """The master's MLflow run logger side process (started from a thread of the master)."""
    found = []
    for task in Path(f"/proc/{master_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"run-logger" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
    return found


def _group(leader: int) -> list[int]:
    """Every process of a process group (the tracking server: its uvicorn workers too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == leader:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _loaded_in(log_path: Path, model: str) -> set[int]:
    """Worker pids that logged loading ``model`` (monitor.registry: "loaded <model> version ...")."""
    import re

    pattern = re.compile(rf"\[(\d+)\] monitor\.registry: loaded {re.escape(model)} version")
    return {int(m.group(1)) for m in pattern.finditer(log_path.read_text(errors="replace"))}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def _machine_cpu() -> tuple[float, float]:
    """Seconds all CPUs were busy (user, nice, system, irq, softirq; steal apart) since boot, and stolen."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    return sum(fields[i] for i in (0, 1, 2, 5, 6)) / tick, fields[7] / tick


def _status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _print(results: list[dict]) -> None:
    print(f"\n{'run':<18}{'clients':>8}{'rows':>8}{'pushes':>8}{'p50 ms':>9}{'p99 ms':>9}{'push/s':>8}"
          f"{'healthz p50/max ms':>20}{'CPU ms/push':>12}{'machine':>9}{'client':>8}{'load':>6}  statuses")
    for r in results:
        if "clients" not in r:
            continue
        health = f"{r['healthz_p50_ms']}/{r['healthz_max_ms']}"
        print(f"{r['run']:<18}{r['clients']:>8}{r['rows']:>8}{r['pushes']:>8}{r['p50_ms']:>9}{r['p99_ms']:>9}"
              f"{r['pushes_per_s']:>8}{health:>20}{r.get('worker_cpu_ms_per_push', '-'):>12}"
              f"{r.get('machine_cpu_ms_per_push', '-'):>9}{r.get('client_cpu_ms_per_push', '-'):>8}"
              f"{r.get('load_average', '-'):>6}  {r['statuses']}")
    for r in results:
        if "outbox_drain_seconds" in r:
            print(f"{r['run']:<18} MLflow run outbox empty {r['outbox_drain_seconds']} s after the loads; "
                  f"CPU ms per push with its run: workers {r.get('worker_cpu_ms_per_push_with_run', '-')}, "
                  f"run logger {r.get('run_logger_cpu_ms_per_push', '-')}, monitor total "
                  f"{r.get('monitor_cpu_ms_per_push_with_run', '-')}, tracking server "
                  f"{r.get('tracking_cpu_ms_per_push', '-')} (load {r.get('load_average', '-')})")
    for r in results:
        if "body_mb" in r:
            kind = "" if r.get("labelled", True) else ", unlabelled"
            print(f"{r['run']:<18} 1,000,000 x 20 Parquet ({r['body_mb']} MB{kind}): status {r['status']}, "
                  f"{r['seconds']} s (worker CPU {r.get('worker_cpu_seconds', '-')} s, load "
                  f"{r.get('load_average', '-')}), peak +{r['peak_extra_mb']} MB = {r['peak_x_decoded']}x "
                  f"the decoded batch ({r['decoded_mb']} MB)")


if __name__ == "__main__":
    sys.exit(main())
