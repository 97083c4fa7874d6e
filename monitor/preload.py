"""Warm a worker as it starts: every version in use loaded, its reference profile ready, its alias
cached, so no request pays a model load (5-14 s on a loaded 2-core machine: the download, the
flavour's imports, the profile fit) and every thread of the worker stays free for requests.

"In use": the configured models that take pushes, and the models pushed in the last
``RECENT_HOURS``, newest first, at most the model cache's size; each at the
version its champion alias points at now. Runs in one background thread per worker (gunicorn's
``post_worker_init``): ``/healthz`` is answered meanwhile, and a request for a model still loading
waits on that model's load lock exactly as it would have loaded it itself.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from monitor.db import utcnow
from monitor.models import Evaluation

log = logging.getLogger(__name__)
RECENT_HOURS = 24


def models_in_use(monitor: Any) -> list[str]:
    """Configured push models first, then the recently pushed ones, newest first, without repeats.

    Only models that receive pushes: a model the scheduler evaluates (simulated or S3 inbox) is
    loaded by whichever process claims its work unit, so preloading it in every worker of every
    replica would multiply the loads (200 models x 3 replicas) and compete with the first round."""
    default = monitor.settings.default_source
    names = [m.name for m in monitor.config.models if (m.source or default) == "push"]
    since = utcnow() - timedelta(hours=RECENT_HOURS)
    with monitor.sessions() as session:
        recent = session.execute(
            sa.select(Evaluation.model_name)
            .where(Evaluation.finished_at >= since, Evaluation.source == "push")
            .group_by(Evaluation.model_name).order_by(sa.func.max(Evaluation.id).desc())
            .limit(monitor.settings.model_cache_size)).scalars().all()
    return list(dict.fromkeys([*names, *recent]))[:monitor.settings.model_cache_size]


def preload(monitor: Any) -> list[tuple[str, str]]:
    """Load each model in use at its champion version; returns the (name, version) pairs loaded."""
    service = monitor.service
    loaded = []
    started = time.perf_counter()
    for name in models_in_use(monitor):
        try:
            version = service.warm(name)
        except Exception as exc:  # noqa: BLE001 - an unloadable model: its requests say why
            log.info("preload of %s skipped: %s", name, exc)
            continue
        loaded.append((name, version))
    log.info("preloaded %s model versions in %.1f s", len(loaded), time.perf_counter() - started)
    return loaded


def preload_in_background(monitor: Any) -> threading.Thread:
    def run() -> None:
        try:
            preload(monitor)
        except Exception:  # noqa: BLE001 - e.g. the database is down: requests load on demand
            log.warning("model preload failed; models load on first use", exc_info=True)

    thread = threading.Thread(target=run, name="model-preload", daemon=True)
    thread.start()
    return thread
