"""Alert latency: from a drifted evaluation being recorded to the webhook receiving the alert.

Real PostgreSQL (DRIFTLINE_TEST_PG_URL), migrated; the monitor app (create_app) with its scheduler
running, so delivery runs as the scheduled leader job every ALERT_DELIVERY_INTERVAL_SECONDS; a local
webhook receiver. Each round records a drifted evaluation the way the evaluation service does (row
flushed, listeners run, one commit), waits for the firing notice, then records clean evaluations
until the resolved notice. (Push → evaluation adds the evaluation's own time, see the monitor's
benchmarks; this figure is what the alerts add.)

    python bench/alert_latency.py                 # 20 rounds, delivery interval 5 s (the default)
    python bench/alert_latency.py --interval 1

Figures are printed and written to bench/results/alert_latency.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "alert_latency.json"


def _wait(receiver, status: str, since: int, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in list(receiver.received[since:]):
            if rec.path == "/webhook" and rec.body["status"] == status:
                return rec.at
        time.sleep(0.005)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0, help="ALERT_DELIVERY_INTERVAL_SECONDS")
    args = parser.parse_args()

    from monitor.app import create_app
    from monitor.db import utcnow
    from monitor.migrate import upgrade
    from monitor.models import Evaluation
    from monitor.settings import MonitorSettings
    from tests.alerts.conftest import verdict
    from tests.services import postgres
    from tests.services.receiver import Receiver

    db_url = postgres.create_database("benchalerts")
    receiver = Receiver().start()
    app = None
    try:
        upgrade(db_url)
        app = create_app(MonitorSettings.model_validate({
            "DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": db_url, "MONITOR_SCHEDULER": "true",
            "MONITOR_SOURCE": "push", "MONITOR_INTERVAL_SECONDS": "3600",
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "ALERT_WEBHOOK_URL": f"{receiver.url}/webhook",
            "ALERT_DELIVERY_INTERVAL_SECONDS": str(args.interval)}))
        monitor = app.extensions["driftline"]

        def record(kind: str) -> None:
            with monitor.sessions() as session, session.begin():  # as EvaluationService._store does
                row = Evaluation(model_name="latency-bench", model_version="1", alias="champion",
                                 batch_id=uuid.uuid4().hex, source="push", started_at=utcnow(),
                                 finished_at=utcnow(), **verdict(kind))
                session.add(row)
                session.flush()
                for listener in monitor.service.listeners:
                    listener(session, row)

        latencies = []
        rng = random.Random(7)
        for _ in range(args.rounds):
            # Arrive at a random point of the delivery cycle, as a real evaluation would.
            time.sleep(rng.uniform(0, args.interval))
            since = len(receiver.received)
            t0 = time.time()
            record("data_drift")
            at = _wait(receiver, "firing", since, timeout=args.interval * 4 + 10)
            if at is None:
                raise SystemExit("no firing notification arrived (is the delivery job scheduled?)")
            latencies.append(at - t0)
            since = len(receiver.received)
            record("clean")
            record("clean")
            if _wait(receiver, "resolved", since, timeout=args.interval * 4 + 10) is None:
                raise SystemExit("no resolved notification arrived")
        result = {
            "rounds": args.rounds, "delivery_interval_seconds": args.interval,
            "measured": "evaluation committed -> webhook received (firing)",
            "latency_seconds": {"median": round(statistics.median(latencies), 3),
                                "max": round(max(latencies), 3), "min": round(min(latencies), 3)},
            "all_latencies": [round(x, 3) for x in latencies],
        }
        print(json.dumps(result, indent=2))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        existing[f"interval_{args.interval:g}s"] = result
        RESULTS.write_text(json.dumps(existing, indent=2) + "\n")
        return 0
    finally:
        if app is not None:
            app.extensions["driftline"].close()
        receiver.stop()
        postgres.drop_database(db_url)


if __name__ == "__main__":
    raise SystemExit(main())
