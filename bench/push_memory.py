"""Where a large push's memory and time go, stage by stage, in process (Flask test client).

Starts the real services (PostgreSQL, SeaweedFS, MLflow tracking server), registers the 20-feature
model of bench/push_path.py, builds the monitor app on PostgreSQL (or SQLite), warms it with small
pushes, then pushes one ``--rows`` x 20 Parquet batch. Every stage of the push path is wrapped: at
each stage's entry and exit the process's peak resident set (VmHWM, reset via /proc/self/clear_refs) is read
and charged to the innermost stage running since the last boundary, so each stage reports the peak
above the resident set before the request (Arrow's allocations included, which tracemalloc misses).
``--tracemalloc`` also lists the largest live allocation sites at each stage's exit and the traced
peak inside it (slower; numpy and Python allocations only).

``--database sqlite`` runs the monitor on a SQLite file instead; ``--unlabelled`` pushes (and warms up
with) batches without the target, so the rows are kept for the labels to come.

``--labels`` (with ``--unlabelled``) then sends the big batch's labels and reports that request's time
and peak (the kept rows read back: one value, or PostgreSQL's slices).

    .venv/bin/python bench/push_memory.py [--rows 1000000] [--tracemalloc] [--database sqlite] [--unlabelled]
                                          [--labels]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOKEN = "bench-token-0123456789abcdef"
FEATURES = 20


class Stages:
    """Peak resident set and time per (innermost) stage of one request."""

    def __init__(self, trace: bool) -> None:
        # Per thread: a big unlabelled push encodes its kept rows in a thread beside the drift tests
        # (the peak of a concurrent stretch goes to whichever stage ends it).
        self.stacks: dict[int, list[str]] = {}
        self.peak: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.traced: dict[str, tuple[int, list[str]]] = {}
        self.base = 0
        self.trace = trace
        self.active = False

    def start(self) -> None:
        self.base = _status_kb()["VmRSS"] * 1024
        _reset_hwm()
        self.active = True

    def boundary(self) -> None:
        if not self.active:
            return
        name = self._stack()[-1]
        peak = _status_kb()["VmHWM"] * 1024 - self.base
        self.peak[name] = max(self.peak.get(name, 0), peak)
        _reset_hwm()

    def _stack(self) -> list[str]:
        return self.stacks.setdefault(threading.get_ident(), ["request"])

    def wrap(self, name: str, fn: Callable) -> Callable:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return fn(*args, **kwargs)
            self.boundary()
            self._stack().append(name)
            if self.trace:
                tracemalloc.reset_peak()
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                if self.trace:
                    traced_peak = tracemalloc.get_traced_memory()[1]
                    top = tracemalloc.take_snapshot().statistics("lineno")[:6]
                    self.traced[name] = (traced_peak, [f"{s.size / 2**20:.0f} MB {s.traceback}" for s in top])
                self.boundary()
                self._stack().pop()

        return wrapped


def _status_kb() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _instrument(stages: Stages, app: Any) -> None:
    import monitor.api as api
    import monitor.db as db
    import monitor.evaluation as evaluation
    import monitor.labels as labels
    import monitor.sources.push as push
    from monitor.drift.detector import DriftDetector
    from monitor.registry import LoadedModel

    api.read_body = stages.wrap("read_body", api.read_body)
    api.parse_batch = stages.wrap("parse_batch", api.parse_batch)
    push._from_parquet = stages.wrap("parquet decode", push._from_parquet)
    api.rows_digest = stages.wrap("rows_digest", api.rows_digest)
    evaluation.validate_batch = stages.wrap("validate_batch", evaluation.validate_batch)
    service = app.extensions["driftline"].service
    cls = type(service)
    cls._predict = stages.wrap("_predict (other)", cls._predict)
    cls._drift = stages.wrap("_drift (other)", cls._drift)
    cls._store = stages.wrap("_store", cls._store)
    LoadedModel.predict = stages.wrap("model.predict", LoadedModel.predict)
    DriftDetector.score = stages.wrap("DriftDetector.score", DriftDetector.score)
    labels.fill_labels = stages.wrap("fill_labels (estimate)", labels.fill_labels)
    labels._pending_frame = stages.wrap("pending rows to Parquet", labels._pending_frame)
    labels._stage_parts = stages.wrap("kept rows staged in slices (PostgreSQL)", labels._stage_parts)
    labels.keep_pending = stages.wrap("keep_pending (rows stored)", labels.keep_pending)
    db.sqlite_write_blob = stages.wrap("SQLite BLOB filled", db.sqlite_write_blob)
    if service.loop is not None:
        loop = service.loop
        loop.before_store = stages.wrap("loop.before_store (challengers)", loop.before_store)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--results", default=None, help="write the figures here as JSON")
    parser.add_argument("--profile", default=None, help="write a cProfile of the big push here (text)")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--unlabelled", action="store_true",
                        help="push (and warm up with) batches without the target: the rows are kept "
                             "for the labels to come")
    parser.add_argument("--labels", action="store_true",
                        help="with --unlabelled: then send the big batch's labels (one Parquet column, "
                             "in row order) and measure that request too")
    args = parser.parse_args()
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # as `serve` sets them for its workers

    import mlflow

    import bench.push_path as push_path
    from tests.services import postgres

    push_path.BIG_LABELLED = not args.unlabelled
    work = Path(tempfile.mkdtemp(prefix="driftline-push-memory-"))
    sqlite = args.database == "sqlite"
    db_url = f"sqlite:///{work / 'monitor.db'}" if sqlite else postgres.create_database("mempush")
    try:
        with push_path.tracking_on_s3(work, "memmlflow") as tracking:
            model = "mem-push-20"
            push_path._register(mlflow.MlflowClient(tracking.url), model, features=FEATURES)
            figures = _measure(db_url, tracking.url, model, args, push_path._parquet_rows)
    finally:
        if not sqlite:
            postgres.drop_database(db_url)
        shutil.rmtree(work, ignore_errors=True)  # the SQLite database and the tracking files
    print(json.dumps(figures, indent=1))
    if args.results:
        Path(args.results).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


def _measure(db_url: str, tracking_url: str, model: str, args: argparse.Namespace,
             parquet_rows: Callable[[str, int], bytes]) -> dict:
    import gc

    import numpy as np
    import pandas as pd

    from monitor.app import create_app
    from monitor.migrate import upgrade
    from monitor.settings import MonitorSettings

    upgrade(db_url)
    settings = MonitorSettings.model_validate({
        "DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": db_url, "MLFLOW_TRACKING_URI": tracking_url,
        "MONITOR_API_TOKEN": TOKEN, "MONITOR_SCHEDULER": "false", "MONITOR_SOURCE": "push",
        "MONITOR_MAX_BATCH_BYTES": str(512 * 1024 * 1024)})
    app = create_app(settings)
    app.extensions["driftline"].service.runs = None  # runs queue in the outbox; nothing here logs them
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/vnd.apache.parquet"}

    def push(body: bytes, batch_id: str | None = None) -> int:
        resp = client.post(f"/api/models/{model}/batches", data=body,
                           headers={**headers, "X-Batch-Id": batch_id or f"m-{uuid.uuid4().hex}"})
        assert resp.status_code in (200, 201), resp.get_data(as_text=True)[:500]
        return resp.status_code

    stages = Stages(args.tracemalloc)
    try:
        for _ in range(3):
            push(parquet_rows(model, 200))
        rng = np.random.default_rng(7)
        frame = pd.DataFrame(rng.uniform(0, 100, (args.rows, FEATURES)),
                             columns=[f"f{i}" for i in range(FEATURES)])
        if not args.unlabelled:
            frame["y"] = frame["f0"] + rng.normal(0, 5, args.rows)
        labels_body = None
        if args.unlabelled and args.labels:
            labels_buffer = io.BytesIO()
            pd.DataFrame({"y": frame["f0"] + rng.normal(0, 5, args.rows)}).to_parquet(labels_buffer)
            labels_body = labels_buffer.getvalue()
        big_id = f"big-{uuid.uuid4().hex}"
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        body = buffer.getvalue()
        decoded = frame.shape[0] * frame.shape[1] * 8
        del frame, buffer
        gc.collect()
        _instrument(stages, app)
        if args.tracemalloc:
            tracemalloc.start(8)
        stages.start()
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        status = push(body, big_id)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(80)
            Path(args.profile).write_text(text.getvalue())
        stages.boundary()
        if args.tracemalloc:
            tracemalloc.stop()
        labelled = None
        if labels_body is not None:
            stages.active = False
            gc.collect()
            base = _status_kb()["VmRSS"] * 1024
            _reset_hwm()
            started = time.perf_counter()
            resp = client.post(f"/api/models/{model}/batches/{big_id}/labels", data=labels_body,
                               headers=headers)
            labelled = {"status": resp.status_code, "seconds": round(time.perf_counter() - started, 2),
                        "peak_mb_above_start": round((_status_kb()["VmHWM"] * 1024 - base) / 2**20),
                        "n_labelled": (resp.get_json() or {}).get("n_labelled")}
    finally:
        app.extensions["driftline"].close()
    mb = 2**20
    return {"rows": args.rows, "database": args.database, "labelled": not args.unlabelled,
            "status": status, "seconds": round(seconds, 2),
            "body_mb": round(len(body) / mb, 1), "decoded_mb": round(decoded / mb),
            "peak_mb": round(max(stages.peak.values()) / mb),
            "peak_x_decoded": round(max(stages.peak.values()) / decoded, 2),
            "stages": {name: {"peak_mb_above_start": round(peak / mb),
                              "seconds": round(stages.seconds.get(name, 0.0), 3),
                              **({"traced_peak_mb": round(stages.traced[name][0] / mb),
                                  "live_at_exit": stages.traced[name][1]} if name in stages.traced else {})}
                       for name, peak in stages.peak.items()},
            "load_average": round(os.getloadavg()[0], 1),
            **({"labels": labelled} if labelled is not None else {})}


if __name__ == "__main__":
    sys.exit(main())
