"""`python -m monitor serve | migrate | run-logger | evaluate --model NAME | reference --model NAME
--version V FILE`.

Settings errors print one line naming the variable and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from monitor.settings import ConfigError, load_config_file, load_settings

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate the database once, then run gunicorn")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("run-logger", help="log the MLflow run outbox until SIGTERM (serve starts it itself)")
    one = sub.add_parser("evaluate", help="evaluate one model once and print the result")
    one.add_argument("--model", required=True)
    one.add_argument("--scenario", default=None, help="simulated scenario (default: the configured source)")
    one.add_argument("--rows", type=int, default=None)
    one.add_argument("--seed", type=int, default=None)
    one.add_argument("--version", default=None, help="model version (default: the champion alias)")
    ref = sub.add_parser("reference", help="upload a reference (CSV or Parquet) for one model version")
    ref.add_argument("--model", required=True)
    ref.add_argument("--version", required=True)
    ref.add_argument("file", help="a .csv or .parquet file with the model inputs and the target")
    args = parser.parse_args(argv)

    from monitor.logging_setup import configure_logging

    configure_logging()
    try:
        settings = load_settings()
        load_config_file(settings.config_file, settings.drift_defaults())
    except ConfigError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from monitor.migrate import upgrade

    if args.command == "migrate":
        upgrade(settings.database_url)
        print("monitor: database is at the latest revision")
        return 0
    if args.command == "run-logger":
        from monitor.run_logger_process import main as run_logger

        return run_logger(settings)
    if args.command == "serve":
        upgrade(settings.database_url)
        _release_run_leases(settings)
        return _exec_gunicorn(settings)
    if args.command == "reference":
        return _upload_reference(settings, args)
    return _evaluate_once(settings, args)


def _release_run_leases(settings) -> None:  # noqa: ANN001 - MonitorSettings
    """On SQLite (one host) no worker runs yet: leases left by a killed server are stale."""
    if not settings.database_url.startswith("sqlite"):
        return
    from monitor.db import make_engine, make_session_factory
    from monitor.monitoring_runs import release_leases

    engine = make_engine(settings.database_url)
    try:
        release_leases(make_session_factory(engine))
    finally:
        engine.dispose()


def _upload_reference(settings, args: argparse.Namespace) -> int:  # noqa: ANN001 - MonitorSettings
    from monitor.api import store_reference
    from monitor.app import create_app
    from monitor.registry import ModelNotFound, TrackingUnavailable, read_table

    try:
        frame = read_table(args.file)
    except Exception as exc:  # noqa: BLE001 - any reader error is the user's file
        print(f"monitor: cannot read {args.file} as CSV or Parquet: {exc}", file=sys.stderr)
        return 1
    if settings.database_url.startswith("sqlite"):
        from monitor.migrate import upgrade

        upgrade(settings.database_url)
    app = create_app(settings.model_copy(update={"scheduler": False}))
    monitor = app.extensions["driftline"]
    try:
        result = store_reference(monitor, args.model, args.version, frame)
    except (ModelNotFound, TrackingUnavailable, ValueError) as exc:
        print(f"monitor: reference refused: {exc}", file=sys.stderr)
        return 1
    finally:
        monitor.close()
    print(json.dumps(result, indent=1, default=str))
    return 0


def _exec_gunicorn(settings) -> int:  # noqa: ANN001 - MonitorSettings
    argv = [sys.executable, "-m", "gunicorn", "monitor.wsgi:app",
            "--bind", f"{settings.host}:{settings.port}", "--workers", str(settings.workers),
            # Threads, not sync workers: a push spends part of its time waiting (database commit,
            # alias lookup), which other threads use; /healthz is answered by a free thread instead
            # of queueing behind pushes; one process per core keeps memory (models, profiles) at
            # one copy per core. Pure CPU work (drift scoring in numpy) releases the GIL.
            "--worker-class", "gthread", "--threads", str(settings.threads),
            # A worker takes no more connections than it has threads, and closes each after its
            # response: a kept-alive connection stays with the worker that accepted it, and one
            # worker had accepted most of 8 clients' connections (up to 97 % of the CPU, the other
            # core idle). Now a busy worker leaves new connections to a free one (bench/README.md,
            # push_path.py, sixth pass).
            "--worker-connections", str(settings.threads), "--keep-alive", "0",
            # A push evaluates synchronously; a cold model load can take several seconds.
            "--timeout", "120", "--graceful-timeout", f"{settings.graceful_timeout_seconds:g}",
            # Its worker_exit hook drains the worker (monitor.gunicorn_conf) before the process exits.
            "--config", "python:monitor.gunicorn_conf", "--access-logfile", "-"]
    # One BLAS thread per request thread: requests are the parallelism, and OpenBLAS's own threads
    # spin-wait between calls, burning the cores the other pushes need (an operator may override).
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached


def _evaluate_once(settings, args: argparse.Namespace) -> int:  # noqa: ANN001
    from monitor.app import create_app
    from monitor.evaluation import DatabaseUnavailable
    from monitor.registry import ModelNotFound
    from monitor.sources.simulated import manual_batch

    upgrade_needed = settings.database_url.startswith("sqlite")
    if upgrade_needed:  # local mode: make the one-shot work on a fresh checkout
        from monitor.migrate import upgrade

        upgrade(settings.database_url)
    app = create_app(settings.model_copy(update={"scheduler": False}))
    monitor = app.extensions["driftline"]
    rows = args.rows or settings.simulated_rows
    try:
        if args.scenario or monitor.config.model(args.model).source not in ("s3",):
            batch = manual_batch(args.scenario or "clean", rows, args.seed)
            outcomes = [monitor.service.evaluate(args.model, batch, version=args.version)]
        else:
            outcomes = monitor.scheduler._evaluate_model(args.model, monitor.scheduler.current_slot())
        runs = monitor.service.runs
        if runs is not None:
            runs.drain()
            runs.log_due()  # a one-shot logs its MLflow run before it exits
    except (ModelNotFound, DatabaseUnavailable) as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 1
    finally:
        monitor.close()
    for outcome in outcomes:
        print(json.dumps({k: v for k, v in outcome.result.items() if k != "report"}, indent=1, default=str))
    return 0 if all(o.status == "ok" for o in outcomes) else 1
