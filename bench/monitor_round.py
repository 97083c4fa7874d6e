"""One full monitoring round: N registered models, a 10,000-row simulated batch each.

Starts the real services the tests use (PostgreSQL database, SeaweedFS, MLflow tracking server),
registers N small models with reference data, then times rounds with
  cold      - fresh process state and no stored profiles (download models, build profiles),
  restart   - fresh process state, profiles already in the database (what a restart sees),
  warm      - same process again (model and profile caches hot),
and prints time and Python peak memory (tracemalloc) per round; figures are also written to
bench/results/monitor_round.json.

    .venv/bin/python bench/monitor_round.py [--models 20] [--rows 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "monitor_round.json"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()

    import mlflow

    from monitor.app import create_app
    from monitor.migrate import upgrade
    from monitor.settings import MonitorSettings
    from tests.monitor.helpers import register_model
    from tests.services import postgres
    from tests.services.seaweedfs import CHECKSUM_ENV, start_s3_server
    from tests.services.tracking import start_tracking

    work = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    s3 = start_s3_server(work / "s3")
    tracking_db, monitor_db = postgres.create_database("benchmlflow"), postgres.create_database("benchmon")
    bucket = s3.make_bucket("bench")
    tracking = start_tracking(work / "tracking", {
        "DRIFTLINE_MODE": "local", "TRACKING_BACKEND_URI": tracking_db,
        "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts", **s3.env},
        bucket=bucket, db_url=tracking_db)
    try:
        import os

        os.environ.update(CHECKSUM_ENV)
        mlflow.set_tracking_uri(tracking.url)
        client = mlflow.MlflowClient(tracking.url)
        names = [f"bench-{i:02d}" for i in range(args.models)]
        started = time.perf_counter()
        for name in names:
            register_model(client, name, kind="linear")
        print(f"registered {len(names)} models in {time.perf_counter() - started:.1f} s", flush=True)
        upgrade(monitor_db)
        config = work / "bench.yaml"
        config.write_text("discover: false\nmodels:\n" + "".join(f"  - name: {n}\n" for n in names))
        settings = MonitorSettings.model_validate({
            "DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": monitor_db,
            "MLFLOW_TRACKING_URI": tracking.url,
            "MONITOR_SCHEDULER": "false", "MONITOR_SOURCE": "simulated", "MONITOR_CONFIG_FILE": str(config),
            "MONITOR_SIMULATED_ROWS": str(args.rows), "MONITOR_INTERVAL_SECONDS": "60"})

        results = []
        slot = 1_000
        app = None
        for label in ("cold", "restart", "warm", "warm"):
            if label != "warm":
                if app is not None:
                    app.extensions["driftline"].close()
                app = create_app(settings)  # fresh caches, as in a new process
            scheduler = app.extensions["driftline"].scheduler
            slot += 1
            tracemalloc.start()
            t0 = time.perf_counter()
            outcomes = scheduler.run_round(slot)
            seconds = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            statuses = sorted({o.status for o in outcomes})
            results.append((label, len(outcomes), seconds, peak / 2**20, statuses))
            print(f"{label}: {seconds:.2f} s", flush=True)
        app.extensions["driftline"].close()

        print(f"\n{args.models} models x {args.rows:,} rows per batch (one round = one evaluation per model)")
        print(f"{'round':<10}{'evals':>6}{'seconds':>10}{'s/model':>10}{'peak MiB':>10}  statuses")
        for label, count, seconds, peak, statuses in results:
            per_model = seconds / max(count, 1)
            print(f"{label:<10}{count:>6}{seconds:>10.2f}{per_model:>10.3f}{peak:>10.1f}  {statuses}")
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process max RSS: {max_rss:.0f} MiB")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "models": args.models, "rows": args.rows,
            "rounds": [{"round": label, "evaluations": count, "seconds": round(seconds, 2),
                        "seconds_per_model": round(seconds / max(count, 1), 3),
                        "peak_python_heap_mib": round(peak, 1), "statuses": statuses}
                       for label, count, seconds, peak, statuses in results],
            "max_rss_mib": round(max_rss),
        }, indent=2) + "\n")
    finally:
        tracking.stop()
        s3.stop()
        postgres.drop_database(tracking_db)
        postgres.drop_database(monitor_db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
