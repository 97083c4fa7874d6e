"""Alerts: rules over evaluation verdicts, an Alertmanager-like lifecycle, silences, and a durable
outbox delivering to a webhook, Slack, a real Alertmanager and the log.

Map: ``rules`` (verdict → signal, labels, fingerprint), ``lifecycle`` (pending/firing/resolved,
repeat), ``silences`` (matchers), ``engine`` (the evaluation listener; writes alert state and outbox
rows in the evaluation's transaction), ``delivery`` (the worker that sends the outbox), ``payloads``
(webhook v4, Slack, Alertmanager v2), ``prompt`` (wakes delivery right after an evaluation's commit
that queued notifications), ``api`` (/api/alerts, /api/silences, /api/deliveries),
``metrics`` (/metrics from the tables), ``models`` (tables; migrations 0002_alerts, 0005_operations),
``episodes`` (firing → resolved history), ``retention`` (pruning), ``dependency`` (``dependency_down``
from probes, see monitor/dependencies.py). See docs/alerts.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.alerts.config import AlertConfig
from monitor.alerts.delivery import DeliveryWorker, deliver_pending
from monitor.alerts.engine import AlertEngine
from monitor.alerts.prompt import PromptDelivery, install_prompt_delivery

__all__ = ["AlertConfig", "AlertEngine", "AlertsRuntime", "DeliveryWorker", "PromptDelivery",
           "deliver_pending", "install"]

log = logging.getLogger("monitor.alerts")
JOB_ID = "alerts-delivery"


@dataclass
class AlertsRuntime:
    config: AlertConfig
    session_factory: Any
    engine: AlertEngine
    worker: DeliveryWorker
    api_token: str | None
    prompt: PromptDelivery | None = None  # delivery woken by this process's commits (None: off)
    pruned_at: datetime | None = None

    def run_cycle(self) -> None:
        """The scheduled job: one delivery cycle, then (hourly) the history retention; a failure is
        logged and retried next cycle."""
        try:
            self.worker.run_cycle()
            self.prune_history()
        except Exception:  # noqa: BLE001 - the job must survive a database blip
            log.exception("alert delivery cycle failed")

    def prune_history(self, now: datetime | None = None, force: bool = False) -> dict[str, int]:
        from monitor.alerts.retention import PRUNE_EVERY, prune
        from monitor.db import utcnow

        now = now or utcnow()
        if not force and self.pruned_at is not None and now - self.pruned_at < PRUNE_EVERY:
            return {}
        with self.session_factory() as session, session.begin():
            removed = prune(session, now, self.config.history_retention)
        self.pruned_at = now
        if any(removed.values()):
            log.info("alert history pruned", extra=removed)
        return removed


def install(app: Any, service: Any, scheduler: Any = None, *, prompt: bool = True) -> AlertsRuntime:
    """Wire the alerts into a monitor app: listener, blueprint, delivery job, metrics.

    ``service`` is the ``EvaluationService`` (``settings``, ``sessions``, ``listeners``). ``scheduler``
    is the monitor's ``MonitorScheduler`` or a plain APScheduler scheduler (both have ``add_job``), or
    None (call ``deliver_pending`` yourself).

    With ``prompt`` (the default), an evaluation whose commit queued notifications wakes a background
    delivery thread in this process at once (``monitor.alerts.prompt``); the scheduled job stays the
    safety net (retries, repeats, other processes' rows). Claims keep every row sent once.
    """
    from monitor.alerts.api import EXTENSION, bp

    settings = service.settings
    session_factory = getattr(service, "sessions", None) or service.session_factory
    config = AlertConfig.from_settings(settings)
    engine = AlertEngine(config)
    worker = DeliveryWorker(session_factory, config)
    token = settings.token() if hasattr(settings, "token") else None
    runtime = AlertsRuntime(config, session_factory, engine, worker, token)
    if prompt:
        # Its own worker (own HTTP session): it may run while the scheduled cycle does.
        runtime.prompt = install_prompt_delivery(session_factory, DeliveryWorker(session_factory, config))

    service.listeners.append(engine)
    app.extensions[EXTENSION] = runtime
    app.register_blueprint(bp)
    if scheduler is not None:
        _schedule(scheduler, runtime)
    log.info("alerts installed; receivers: %s", ", ".join(r.name for r in config.receivers))
    return runtime


def _schedule(scheduler: Any, runtime: AlertsRuntime) -> None:
    # MonitorScheduler.add_job runs the job on the scheduler leader only: one process delivers.
    seconds = runtime.config.delivery_interval.total_seconds()
    scheduler.add_job(runtime.run_cycle, "interval", seconds=seconds, id=JOB_ID, replace_existing=True,
                      max_instances=1, coalesce=True)
