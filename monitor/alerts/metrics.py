"""Prometheus metrics of the alerts, computed from the database at scrape time.

Read from the tables (not counted in process) so every gunicorn worker reports the same numbers
and nothing resets on restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.alerts.models import Alert, Delivery
from monitor.db import utcnow

log = logging.getLogger("monitor.alerts")


class AlertsCollector(Collector):
    def __init__(self, session_factory: Any) -> None:
        self.session_factory = session_factory

    def collect(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily("driftline_alert_deliveries", "Outbox rows by receiver and status",
                                       labels=["receiver", "status"])
        failed = CounterMetricFamily("driftline_alert_delivery_failed_attempts",
                                     "Failed delivery attempts per receiver", labels=["receiver"])
        oldest = GaugeMetricFamily("driftline_alert_delivery_oldest_pending_seconds",
                                   "Age of the oldest undelivered notification per receiver",
                                   labels=["receiver"])
        alerts = GaugeMetricFamily("driftline_alerts", "Alerts by name and state",
                                   labels=["alertname", "state"])
        try:
            with self.session_factory() as session:
                now = utcnow()
                for receiver, status, n in session.execute(
                        sa.select(Delivery.receiver, Delivery.status, sa.func.count())
                        .group_by(Delivery.receiver, Delivery.status)):
                    deliveries.add_metric([receiver, status], n)
                for receiver, total in session.execute(
                        sa.select(Delivery.receiver,
                                  sa.func.coalesce(sa.func.sum(Delivery.failed_attempts), 0))
                        .group_by(Delivery.receiver)):
                    failed.add_metric([receiver], float(total))
                for receiver, first in session.execute(
                        sa.select(Delivery.receiver, sa.func.min(Delivery.created_at))
                        .where(Delivery.status == "pending").group_by(Delivery.receiver)):
                    if first is not None:
                        first = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
                        oldest.add_metric([receiver], max(0.0, (now - first).total_seconds()))
                for name, state, n in session.execute(
                        sa.select(Alert.alertname, Alert.state, sa.func.count())
                        .group_by(Alert.alertname, Alert.state)):
                    alerts.add_metric([name, state], n)
        except sa.exc.SQLAlchemyError as exc:  # a scrape must not fail because the DB blinked
            log.warning("alert metrics unavailable: %s", type(exc).__name__)
        yield from (deliveries, failed, oldest, alerts)
