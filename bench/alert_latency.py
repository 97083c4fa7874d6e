"""Alert latency: from a drifted batch being pushed to the monitor's API to the webhook receiving the
firing alert.

Everything real and in separate processes, as deployed: a PostgreSQL database for the monitor
(``tests.services.postgres``), an MLflow tracking server (``python -m tracking``, SQLite and a local
artifact folder in a temp dir), one model registered the way the tests and the trainer do it
(reference data, tags, ``champion`` alias), the monitor served by gunicorn (``python -m monitor
serve``, 2 workers, scheduler on, push source) and a local webhook receiver
(``tests/services/receiver.py``) as ``ALERT_WEBHOOK_URL``.

Each round waits a random part of the delivery interval (so pushes land anywhere in the delivery
cycle), POSTs a ``data_drift`` batch to ``/api/models/<name>/batches`` and measures until the receiver
has the ``data_drift`` firing notice; then it pushes clean batches until every alert that fired has
been resolved (``ALERT_RESOLVE_AFTER=1``), so the next round fires a new, independent notification.
Before the rounds, clean batches warm both workers (model and profile caches).

    python bench/alert_latency.py                 # 20 rounds, delivery interval 5 s (the default)
    python bench/alert_latency.py --interval 1 --rounds 10

Figures are printed and written to bench/results/alert_latency.json (one entry per ``--label``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "alert_latency.json"
MODEL = "latency-bench"
TOKEN = "bench-token-0123456789abcdef"


def _seen(receiver: Any, since: int) -> dict[tuple[str, str], Any]:
    """First webhook request per (alertname, status) received after index ``since``."""
    found: dict[tuple[str, str], Any] = {}
    for rec in list(receiver.received[since:]):
        if rec.path == "/webhook":
            found.setdefault((rec.body["commonLabels"].get("alertname"), rec.body["status"]), rec)
    return found


def _wait(receiver: Any, since: int, wanted: set[tuple[str, str]],
          timeout: float) -> dict[tuple[str, str], Any]:
    """Wait until the webhook received every (alertname, status) in ``wanted`` after index ``since``."""
    deadline = time.monotonic() + timeout
    while True:
        found = _seen(receiver, since)
        if wanted <= set(found):
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {sorted(wanted - set(found))}; got {sorted(found)}")
        time.sleep(0.002)


def _start_monitor(work: Path, db_url: str, tracking_url: str, receiver_url: str, interval: float,
                   workers: int) -> tuple[Any, str]:
    from tests.services.process import ManagedProcess, free_port, http_ok
    from tests.services.tracking import clean_env

    config = work / "monitor.yaml"
    config.write_text(f"discover: false\nmodels:\n  - name: {MODEL}\n    source: push\n")
    port = free_port()
    env = clean_env(
        DRIFTLINE_MODE="local", DRIFTLINE_DATA_DIR=str(work / "monitor"), MONITOR_DATABASE_URL=db_url,
        MLFLOW_TRACKING_URI=tracking_url, MONITOR_HOST="127.0.0.1", MONITOR_PORT=str(port),
        MONITOR_WORKERS=str(workers), MONITOR_SCHEDULER="true", MONITOR_SOURCE="push",
        MONITOR_INTERVAL_SECONDS="3600", MONITOR_CONFIG_FILE=str(config), MONITOR_API_TOKEN=TOKEN,
        ALERT_WEBHOOK_URL=f"{receiver_url}/webhook", ALERT_DELIVERY_INTERVAL_SECONDS=f"{interval:g}",
        ALERT_RESOLVE_AFTER="1",
    )
    proc = ManagedProcess("monitor", [sys.executable, "-m", "monitor", "serve"], work / "monitor.log",
                          env=env, cwd=REPO).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_until(lambda: http_ok(f"{url}/healthz"), timeout=90, what="serving /healthz")
    return proc, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0, help="ALERT_DELIVERY_INTERVAL_SECONDS")
    parser.add_argument("--rows", type=int, default=500, help="rows per pushed batch")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (MONITOR_WORKERS)")
    parser.add_argument("--label", default=None, help="key in the results file (default interval_<S>s)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import mlflow
    import requests

    from seed_scenarios import ScenarioParams, make_batch
    from tests.monitor.helpers import register_model
    from tests.services import postgres
    from tests.services.receiver import Receiver
    from tests.services.tracking import start_tracking

    work = Path(tempfile.mkdtemp(prefix="driftline-alert-latency-"))
    db_url = postgres.create_database("benchalerts")
    receiver = Receiver().start()
    tracking = monitor = None
    try:
        tracking = start_tracking(work / "tracking", {"DRIFTLINE_MODE": "local"})
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(name, None)
        mlflow.set_tracking_uri(tracking.url)
        version = register_model(mlflow.MlflowClient(tracking.url), MODEL)
        monitor, url = _start_monitor(work, db_url, tracking.url, receiver.url, args.interval, args.workers)
        print(f"monitor at {url} ({args.workers} workers), model {MODEL} v{version}, "
              f"delivery interval {args.interval:g} s", flush=True)

        http = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        seeds = iter(range(1000, 100_000))

        def push(scenario: str) -> tuple[float, float, dict[str, Any]]:
            frame = make_batch(scenario, ScenarioParams(rows=args.rows, seed=next(seeds)))
            body = frame.to_dict(orient="records")
            started = time.time()
            resp = http.post(f"{url}/api/models/{MODEL}/batches", json=body, headers=headers, timeout=120)
            answered = time.time()
            if resp.status_code != 201:
                raise SystemExit(f"push answered {resp.status_code}: {resp.text[:300]}\n{monitor.log_tail()}")
            return started, answered, resp.json()

        def firing_now() -> list[str]:
            resp = http.get(f"{url}/api/alerts", params={"state": "firing", "model": MODEL}, timeout=30)
            return [a["labels"]["alertname"] for a in resp.json()["alerts"]]

        def settle(since: int, fired: set[str]) -> int:
            """Clean batches until nothing fires (ALERT_RESOLVE_AFTER=1) and the webhook has every
            resolved notice; returns the clean batches pushed."""
            for pushed in range(1, 11):
                push("clean")
                if not firing_now():
                    _wait(receiver, since, {(name, "resolved") for name in fired}, args.interval * 4 + 10)
                    return pushed
            raise SystemExit(f"alerts still firing after 10 clean batches: {firing_now()}")

        for _ in range(3 * args.workers):  # warm every worker's model and profile cache
            push("clean")
        settle(0, set())
        time.sleep(args.interval + 1)
        receiver.clear()

        rng = random.Random(7)
        rounds: list[dict[str, Any]] = []
        for i in range(args.rounds):
            time.sleep(rng.uniform(0, args.interval))  # land anywhere in the delivery cycle
            since = len(receiver.received)
            started, answered, result = push("data_drift")
            if not result.get("data_drift"):
                raise SystemExit(f"round {i}: the drifted batch was not flagged: {result}")
            got = _wait(receiver, since, {("data_drift", "firing")}, timeout=args.interval * 4 + 30)
            arrived = got[("data_drift", "firing")].at
            # Whatever else fired with it (concept drift, performance) is resolved before the next round.
            fired = set(firing_now()) | {name for name, status in got if status == "firing"}
            clean = settle(since, fired)
            mine = [r for r in receiver.received[since:]
                    if r.path == "/webhook" and r.body["status"] == "firing"
                    and r.body["commonLabels"].get("alertname") == "data_drift"]
            rounds.append({"latency": arrived - started, "push_response": answered - started,
                           "after_response": arrived - answered, "fired": sorted(fired),
                           "data_drift_firing_notices": len(mine), "clean_batches_to_resolve": clean})
            print(f"round {i + 1:2d}: push -> webhook {arrived - started:6.3f} s "
                  f"(response {answered - started:.3f} s; fired {', '.join(sorted(fired))})", flush=True)
        keys = [r.headers.get("Idempotency-Key") for r in receiver.received if r.path == "/webhook"]

        latencies = [r["latency"] for r in rounds]
        after = [r["after_response"] for r in rounds]
        response = [r["push_response"] for r in rounds]

        def summary(values: list[float]) -> dict[str, float]:
            return {"median": round(statistics.median(values), 3), "max": round(max(values), 3),
                    "min": round(min(values), 3)}

        result = {
            "rounds": args.rounds, "delivery_interval_seconds": args.interval, "rows": args.rows,
            "gunicorn_workers": args.workers,
            "measured": "drifted batch POSTed to /api/models/<name>/batches -> webhook received (firing)",
            "latency_seconds": summary(latencies),
            "push_response_seconds": summary(response),
            "response_to_webhook_seconds": summary(after),
            "data_drift_firing_notices_per_round": sorted({r["data_drift_firing_notices"] for r in rounds}),
            "webhook_requests": len(keys), "duplicate_requests": len(keys) - len(set(keys)),
            "all_latencies": [round(x, 3) for x in latencies],
        }
        print(json.dumps({k: v for k, v in result.items() if k != "all_latencies"}, indent=2))
        if result["data_drift_firing_notices_per_round"] != [1] or result["duplicate_requests"]:
            raise SystemExit("a firing notice was missing or sent twice: "
                             f"{result['data_drift_firing_notices_per_round']}, "
                             f"{result['duplicate_requests']} duplicate request(s)")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(args.output.read_text()) if args.output.exists() else {}
        # Entries of the earlier measurement (evaluation commit -> webhook) are replaced, not mixed in.
        existing = {k: v for k, v in existing.items()
                    if str(v.get("measured", "")).startswith("drifted batch")}
        existing[args.label or f"interval_{args.interval:g}s"] = result
        args.output.write_text(json.dumps(existing, indent=2) + "\n")
        return 0
    finally:
        if monitor is not None:
            monitor.stop()
        if tracking is not None:
            tracking.stop()
        receiver.stop()
        postgres.drop_database(db_url)


if __name__ == "__main__":
    raise SystemExit(main())
