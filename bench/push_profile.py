"""The 100-row push in process: CPU per push and where it goes (Flask test client, no HTTP server).

Starts the real services (PostgreSQL, SeaweedFS, MLflow tracking server), registers a 2-feature
model, builds the monitor app on SQLite and on PostgreSQL, warms it (model, profile, alias), then
pushes ``--pushes`` new 100-row CSV batches one after the other and reports the process CPU per push
(``time.process_time``: all threads of this process, so the background run logger too unless it is
off) beside the wall time and the load average. ``--profile`` writes a cProfile of the pushes
(sorted by cumulative time) next to the JSON figures. The MLflow run outbox is filled but not
drained (no logger in this process): the figure is the request's own CPU.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/push_profile.py --pushes 200 --profile
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/push_profile.py --pushes 1200 --direct-ab 12
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOKEN = "bench-token-0123456789abcdef"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--warm-pushes", type=int, default=10,
                        help="pushes before the measured ones (a model with a long history: 1000+)")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--profile", action="store_true", help="cProfile the pushes (slower)")
    parser.add_argument("--direct-ab", type=int, default=0, metavar="BLOCKS",
                        help="also push BLOCKS blocks of --pushes/BLOCKS pushes each way in turn, with the "
                             "model's direct sklearn predict and through MLflow's pyfunc (registry.py "
                             "_direct_predict): one process, so the machine's drift hits both arms")
    parser.add_argument("--statements", action="store_true",
                        help="print the SQL statements of one push (after the warm ones)")
    parser.add_argument("--results", default=str(REPO / "bench" / "results" / "push_profile.json"))
    args = parser.parse_args()
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # as `serve` sets them for its workers

    import mlflow

    from bench.push_path import _csv, _register, tracking_on_s3
    from tests.services import postgres

    work = Path(tempfile.mkdtemp(prefix="driftline-push-profile-"))
    out: list[dict] = []
    databases: list[str] = []
    try:
        with tracking_on_s3(work, "profmlflow") as tracking:
            model = "prof-push-2"
            _register(mlflow.MlflowClient(tracking.url), model, features=2)
            body = _csv(args.rows)
            for kind in args.databases.split(","):
                if kind == "postgres":
                    db_url = postgres.create_database("profpush")
                    databases.append(db_url)
                else:
                    db_url = f"sqlite:///{work / 'monitor.db'}"
                figures = _measure(kind, db_url, tracking.url, model, body, args, Path(args.results))
                out.append(figures)
                print(json.dumps(figures), flush=True)
    finally:
        for url in databases:
            postgres.drop_database(url)
    Path(args.results).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def _measure(kind: str, db_url: str, tracking_url: str, model: str, body: bytes,
             args: argparse.Namespace, results: Path) -> dict:
    from monitor.app import create_app
    from monitor.migrate import upgrade
    from monitor.settings import MonitorSettings

    upgrade(db_url)
    settings = MonitorSettings.model_validate({
        "DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": db_url, "MLFLOW_TRACKING_URI": tracking_url,
        "MONITOR_API_TOKEN": TOKEN, "MONITOR_SCHEDULER": "false", "MONITOR_SOURCE": "push"})
    app = create_app(settings)
    service = app.extensions["driftline"].service
    service.runs = None  # runs queue in the outbox; nothing here logs them
    service.warm(model)  # as a served worker does at start (monitor/preload.py): estimator fitted
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv"}

    def push() -> None:
        resp = client.post(f"/api/models/{model}/batches", data=body,
                           headers={**headers, "X-Batch-Id": f"p-{uuid.uuid4().hex}"})
        assert resp.status_code == 201, resp.get_data(as_text=True)

    try:
        for _ in range(args.warm_pushes):
            push()
        if args.statements:
            _print_statements(app, push, kind)
        profiler = cProfile.Profile() if args.profile else None
        load = os.getloadavg()[0]
        cpu, wall, server = time.process_time(), time.perf_counter(), _postgres_cpu()
        if profiler is not None:
            profiler.enable()
        for _ in range(args.pushes):
            push()
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        server = _postgres_cpu() - server
        figures = {"database": kind, "rows": args.rows, "pushes": args.pushes, "profiled": args.profile,
                   "cpu_ms_per_push": round(1000 * cpu / args.pushes, 2),
                   "wall_ms_per_push": round(1000 * wall / args.pushes, 2),
                   # every postgres process of the machine (backends, WAL writer, ...): the database's
                   # side of a push, which the 2 cores pay as well
                   "postgres_cpu_ms_per_push": round(1000 * server / args.pushes, 2),
                   "load_average": [round(load, 1), round(os.getloadavg()[0], 1)]}
        if args.direct_ab:
            figures["direct_ab"] = _direct_ab(service, model, push, args.pushes, args.direct_ab)
        if profiler is not None:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(90)
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
            target = results.with_name(f"push_profile_{kind}.txt")
            target.write_text(text.getvalue())
            figures["profile"] = str(target)
    finally:
        app.extensions["driftline"].close()
    return figures


def _direct_ab(service, model: str, push, pushes: int, blocks: int) -> dict:  # noqa: ANN001
    """Process CPU per push with the loaded model's direct predict and without it, block by block in
    turn (ABBA order, so a trend in the machine's speed falls on both arms alike)."""
    import statistics

    loaded = service.registry.load(model, service.registry.resolve(model))
    direct = loaded.direct
    if direct is None:
        return {"error": "this model version has no direct predict"}
    per_block = max(1, pushes // blocks)
    arms: dict[str, list[float]] = {"direct": [], "pyfunc": []}
    order = ["direct", "pyfunc", "pyfunc", "direct"]
    try:
        for block in range(2 * blocks):
            arm = order[block % 4]
            loaded.direct = direct if arm == "direct" else None
            cpu = time.process_time()
            for _ in range(per_block):
                push()
            arms[arm].append(1000 * (time.process_time() - cpu) / per_block)
    finally:
        loaded.direct = direct
    return {arm: {"median_cpu_ms_per_push": round(statistics.median(v), 3),
                  "blocks": [round(x, 2) for x in v]} for arm, v in arms.items()} | {
        "pushes_per_block": per_block}


def _postgres_cpu() -> float:
    """CPU seconds (user + system) of every running ``postgres`` process of this machine."""
    from bench.push_path import _cpu_seconds

    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
                pids.append(int(pid))
        except OSError:  # exited meanwhile
            continue
    return _cpu_seconds(pids)


def _print_statements(app, push, kind: str) -> None:  # noqa: ANN001 - Flask app, a callable
    """Every statement one push sends to the database, in order (what a round trip costs)."""
    import sqlalchemy as sa

    engine = app.extensions["driftline"].service.sessions.kw["bind"]
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        seen.append(("executemany " if executemany else "") + " ".join(statement.split())[:160])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        push()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    print(f"-- {kind}: {len(seen)} statements in one push", flush=True)
    for statement in seen:
        print("   " + statement, flush=True)


if __name__ == "__main__":
    sys.exit(main())
