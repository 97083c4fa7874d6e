"""The Flask app factory: settings → database, registry, evaluation service, scheduler → blueprints.

Nothing happens at import time. The scheduler starts only when the settings say so
(MONITOR_SCHEDULER=true), and even then only the leader process runs rounds (see scheduler.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monitor.db import make_engine, make_session_factory
from monitor.dependencies import DependencyWatch, build_probes
from monitor.evaluation import EvaluationService
from monitor.metrics import make_registry
from monitor.monitoring_runs import SWEEP_SECONDS, RunLogger
from monitor.reference import ProfileStore
from monitor.registry import Registry
from monitor.scheduler import MonitorScheduler
from monitor.security import install_security_headers
from monitor.settings import MonitorConfig, MonitorSettings, load_config_file, load_settings
from monitor.sources.s3_inbox import S3Inbox

log = logging.getLogger(__name__)


@dataclass
class Monitor:
    """Everything one app instance owns, at ``app.extensions["driftline"]``."""

    settings: MonitorSettings
    config: MonitorConfig
    engine: sa.Engine
    sessions: sessionmaker
    registry: Registry
    service: EvaluationService
    scheduler: MonitorScheduler
    inbox: S3Inbox
    metrics: CollectorRegistry
    watch: DependencyWatch | None = None
    prompt: Any = None  # monitor.alerts.PromptDelivery when the alerts are installed
    delivery: Any = None  # the scheduled cycle's DeliveryWorker
    loop: Any = None  # monitor.loop.ClosedLoop
    _closed: bool = False

    def close(self, grace_seconds: float | None = None) -> None:
        """Shut down without losing or doubling work: stop taking rounds, let a running job finish,
        then drain the prompt-delivery thread (it finishes and records the row it is sending) before
        the connections close. Bounded by ``grace_seconds`` (default: the graceful timeout - 5 s)."""
        if self._closed:
            return
        self._closed = True
        if grace_seconds is None:  # leave gunicorn's graceful timeout a margin before it kills us
            grace_seconds = max(1.0, self.settings.graceful_timeout_seconds - 5)
        deadline = time.monotonic() + grace_seconds
        for worker in (self.delivery, getattr(self.prompt, "worker", None)):
            if worker is not None:
                worker.stop()  # no new row claimed; the one being sent is finished and recorded
        self.scheduler.shutdown(wait=True, timeout=max(0.5, deadline - time.monotonic()))
        if self.prompt is not None:
            self.prompt.close(max(0.5, deadline - time.monotonic()))
        if self.service.runs is not None:
            self.service.runs.drain()  # MLflow runs queued in flight: logged now or left for the sweep
        self.engine.dispose()


def create_app(settings: MonitorSettings | None = None) -> Flask:
    settings = settings or load_settings()
    config = load_config_file(settings.config_file, settings.drift_defaults())
    _export_client_credentials(settings)

    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    registry = Registry(settings.tracking_uri, settings.champion_alias, max_models=settings.model_cache_size)
    profiles = ProfileStore(registry, sessions, max_profiles=2 * settings.model_cache_size)
    # Under ``serve`` with MONITOR_RUN_LOGGER=process the master's side process logs the runs; any
    # other app (thread mode, one-shots, tests, apps built in process) logs them in a thread.
    runs = RunLogger(sessions, registry) if not _side_process_logs(settings) else None
    service = EvaluationService(settings=settings, config=config, sessions=sessions, registry=registry,
                                profiles=profiles, listeners=[], runs=runs)
    inbox = S3Inbox(settings, sessions)
    scheduler = MonitorScheduler(service, inbox)
    monitor = Monitor(settings, config, engine, sessions, registry, service, scheduler, inbox,
                      make_registry(sessions))

    app = Flask(__name__)
    # Flask refuses bigger bodies with 413 before a view reads them (answered as JSON below).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_batch_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["driftline"] = monitor

    from monitor import api, ops

    app.register_blueprint(ops.bp)
    app.register_blueprint(api.bp)
    from monitor import labels_api

    app.register_blueprint(labels_api.bp)
    # The dashboard (monitor/dashboard) is pages over the same data; registered when present.
    try:
        from monitor.dashboard import bp as dashboard_bp
    except ImportError:
        dashboard_bp = None
    if dashboard_bp is not None:
        app.register_blueprint(dashboard_bp)
    _register_error_handlers(app)
    install_security_headers(app)

    from monitor.read_auth import install_read_gate

    app.extensions["driftline_login"] = install_read_gate(app, settings)

    # --- alerts (monitor/alerts, built by the alerts engineer) ------------------------------------
    # install(app, service, scheduler) appends its listener to service.listeners and its delivery
    # job to the scheduler (scheduler.add_leader_job) before the scheduler starts.
    try:
        from monitor import alerts
    except ImportError:
        alerts = None
    runtime = None
    if alerts is not None:
        runtime = alerts.install(app, service, scheduler)
        monitor.prompt, monitor.delivery = runtime.prompt, runtime.worker
    # ------------------------------------------------------------------------------------------------
    # The closed loop (challengers, promotion, rollback, retraining): after the alerts, whose listener
    # must run before the retraining listener reads the alerts' state.
    from monitor import loop as closed_loop

    monitor.loop = closed_loop.install(monitor, runtime, app)

    if runs is not None:
        # The leader sweeps the run outbox (retries, rows of dead processes); this process takes what
        # is due now, e.g. runs queued before a restart.
        scheduler.add_job(runs.sweep, "interval", seconds=SWEEP_SECONDS, id="monitoring-runs",
                          replace_existing=True, max_instances=1, coalesce=True)
        runs.wake()
    _install_dependency_watch(monitor, runtime)
    if settings.scheduler:
        scheduler.start()
    # On SIGTERM gunicorn's worker_exit hook (monitor/gunicorn_conf.py) drains the worker; atexit is
    # the fallback for any other exit (close runs once).
    atexit.register(monitor.close)
    return app


def _side_process_logs(settings: MonitorSettings) -> bool:
    from monitor import run_logger_process

    return settings.run_logger == "process" and run_logger_process.SUPERVISED


def _install_dependency_watch(monitor: Monitor, runtime: Any) -> None:
    from datetime import timedelta

    settings = monitor.settings
    down_after = timedelta(seconds=settings.dependency_down_after_seconds)
    dependency_alerts = None
    receivers: tuple = ()
    if runtime is not None:
        from monitor.alerts.dependency import DependencyAlerts

        dependency_alerts = DependencyAlerts(runtime.engine, down_after)
        receivers = runtime.config.receivers
    monitor.watch = DependencyWatch(build_probes(monitor, receivers), monitor.sessions, down_after,
                                    dependency_alerts, on_recovered=monitor.scheduler.catch_up)
    if settings.scheduler:
        monitor.scheduler.add_watch_job(monitor.watch, settings.dependency_check_seconds)


def _export_client_credentials(settings: MonitorSettings) -> None:
    """MLflow's client reads credentials from the environment; settings given in code must reach it."""
    if settings.tracking_username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.tracking_username
    if settings.tracking_password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.tracking_password.get_secret_value()


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return jsonify(error=f"batch too large: the limit is {limit} bytes",
                       detail={"max_bytes": limit,
                               "hint": "split the batch or raise MONITOR_MAX_BATCH_BYTES"}), 413

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=exc.name, detail=exc.description), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return jsonify(error="internal error", detail=f"{type(exc).__name__}: see the monitor's log"), 500


def monitor_of(app: Flask) -> Any:
    return app.extensions["driftline"]
