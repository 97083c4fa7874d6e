"""The Flask app factory: settings → database, registry, evaluation service, scheduler → blueprints.

Nothing happens at import time. The scheduler starts only when the settings say so
(MONITOR_SCHEDULER=true), and even then only the leader process runs rounds (see scheduler.py).
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monitor.db import make_engine, make_session_factory
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

    def close(self) -> None:
        self.scheduler.shutdown()
        if self.service.runs is not None:
            self.service.runs.drain()
        self.engine.dispose()


def create_app(settings: MonitorSettings | None = None) -> Flask:
    settings = settings or load_settings()
    config = load_config_file(settings.config_file)
    _export_client_credentials(settings)

    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    registry = Registry(settings.tracking_uri, settings.champion_alias)
    profiles = ProfileStore(registry, sessions)
    runs = RunLogger(sessions, registry)
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
    # The dashboard (monitor/dashboard) is pages over the same data; registered when present.
    try:
        from monitor.dashboard import bp as dashboard_bp
    except ImportError:
        dashboard_bp = None
    if dashboard_bp is not None:
        app.register_blueprint(dashboard_bp)
    _register_error_handlers(app)
    install_security_headers(app)

    # --- alerts (monitor/alerts, built by the alerts engineer) ------------------------------------
    # install(app, service, scheduler) appends its listener to service.listeners and its delivery
    # job to the scheduler (scheduler.add_leader_job) before the scheduler starts.
    try:
        from monitor import alerts
    except ImportError:
        alerts = None
    if alerts is not None:
        alerts.install(app, service, scheduler)
    # ------------------------------------------------------------------------------------------------

    # The leader sweeps the run outbox (retries, rows of dead processes); this process takes what
    # is due now, e.g. runs queued before a restart.
    scheduler.add_job(runs.sweep, "interval", seconds=SWEEP_SECONDS, id="monitoring-runs",
                      replace_existing=True, max_instances=1, coalesce=True)
    runs.wake()
    if settings.scheduler:
        scheduler.start()
        atexit.register(scheduler.shutdown)
    return app


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
