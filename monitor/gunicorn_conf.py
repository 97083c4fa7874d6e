"""gunicorn hooks (``--config python:monitor.gunicorn_conf``): a graceful shutdown drains the worker.

On SIGTERM gunicorn stops the worker's request loop and calls ``worker_exit`` before the interpreter
shuts down: the monitor stops its scheduler, lets a running job finish, and lets the prompt-delivery
thread finish and record the notification it is sending (``Monitor.close``), within the graceful
timeout. Without this the thread died mid-send and the row was sent again after its lease expired.
"""

from __future__ import annotations

import sys
from typing import Any


def worker_exit(server: Any, worker: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    wsgi = sys.modules.get("monitor.wsgi")
    app = getattr(wsgi, "app", None)
    if app is not None:
        app.extensions["driftline"].close()
