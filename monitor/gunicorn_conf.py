"""gunicorn hooks (``--config python:monitor.gunicorn_conf``).

- ``when_ready`` (master, before the workers fork): with ``MONITOR_RUN_LOGGER=process`` the master
  starts the MLflow run logger as its side process and keeps it running
  (monitor/run_logger_process.py); the workers then never log runs.
- ``post_worker_init`` (each worker, once its app is built): loads the versions in use in a
  background thread (``MONITOR_PRELOAD_MODELS``), so no request pays a model load and ``/healthz``
  is answered meanwhile (monitor/preload.py).
- ``worker_exit``: a SIGTERM drains the worker (``Monitor.close``) before it exits: the scheduler
  stops, a running job finishes, the prompt-delivery thread finishes and records the notification
  it is sending, within the graceful timeout. Without this the thread died mid-send and the row was
  sent again after its lease expired.
- ``on_exit`` (master): the side process finishes the run it is logging and exits.
"""

from __future__ import annotations

import sys
from typing import Any

from monitor import run_logger_process

_supervisor: run_logger_process.Supervisor | None = None


def when_ready(server: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    global _supervisor
    from monitor.settings import load_settings

    if _supervisor is None and load_settings().run_logger == "process":
        run_logger_process.SUPERVISED = True  # inherited by the workers forked after this
        _supervisor = run_logger_process.Supervisor()
        _supervisor.start()


def post_worker_init(worker: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    wsgi = sys.modules.get("monitor.wsgi")
    app = getattr(wsgi, "app", None)
    if app is not None and app.extensions["driftline"].settings.preload_models:
        from monitor.preload import preload_in_background

        preload_in_background(app.extensions["driftline"])


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    wsgi = sys.modules.get("monitor.wsgi")
    app = getattr(wsgi, "app", None)
    if app is not None:
        app.extensions["driftline"].close()


def on_exit(server: Any) -> None:
    if _supervisor is not None:
        _supervisor.stop(timeout=max(1.0, float(server.cfg.graceful_timeout) - 2))
