"""`python -m monitor serve | migrate | evaluate --model NAME`.

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
    one = sub.add_parser("evaluate", help="evaluate one model once and print the result")
    one.add_argument("--model", required=True)
    one.add_argument("--scenario", default=None, help="simulated scenario (default: the configured source)")
    one.add_argument("--rows", type=int, default=None)
    one.add_argument("--seed", type=int, default=None)
    one.add_argument("--version", default=None, help="model version (default: the champion alias)")
    args = parser.parse_args(argv)

    from monitor.logging_setup import configure_logging

    configure_logging()
    try:
        settings = load_settings()
        load_config_file(settings.config_file)
    except ConfigError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from monitor.migrate import upgrade

    if args.command == "migrate":
        upgrade(settings.database_url)
        print("monitor: database is at the latest revision")
        return 0
    if args.command == "serve":
        upgrade(settings.database_url)
        return _exec_gunicorn(settings)
    return _evaluate_once(settings, args)


def _exec_gunicorn(settings) -> int:  # noqa: ANN001 - MonitorSettings
    argv = [sys.executable, "-m", "gunicorn", "monitor.wsgi:app",
            "--bind", f"{settings.host}:{settings.port}", "--workers", str(settings.workers),
            # A push evaluates synchronously; a cold model load can take several seconds.
            "--timeout", "120", "--graceful-timeout", f"{settings.graceful_timeout_seconds:g}",
            # Its worker_exit hook drains the worker (monitor.gunicorn_conf) before the process exits.
            "--config", "python:monitor.gunicorn_conf", "--access-logfile", "-"]
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
    except (ModelNotFound, DatabaseUnavailable) as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 1
    finally:
        monitor.close()
    for outcome in outcomes:
        print(json.dumps({k: v for k, v in outcome.result.items() if k != "report"}, indent=1, default=str))
    return 0 if all(o.status == "ok" for o in outcomes) else 1
