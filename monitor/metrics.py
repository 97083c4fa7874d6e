"""Prometheus metrics computed from the database at scrape time.

Only the scheduler leader evaluates, and pushes are served by whichever gunicorn worker gets them, so
per-process counters would disagree between workers. Reading the numbers from the shared database
makes every worker (and every replica) report the same values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import sessionmaker

from monitor.models import Evaluation, FeatureResult
from monitor.monitoring_runs import RunBacklogCollector

log = logging.getLogger(__name__)
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier",
                          "baseline_accuracy", "baseline_balanced_accuracy", "baseline_macro_f1",
                          "baseline_log_loss", "baseline_brier")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class DatabaseCollector(Collector):
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("driftline_monitor_database_up",
                               "1 when the monitor database answered this scrape")
        try:
            families = list(self._from_db())
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even when the DB is down
            log.warning("metrics: database unavailable: %s", str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _from_db(self) -> Iterator:
        with self.sessions() as session:
            counts = session.execute(sa.select(Evaluation.model_name, Evaluation.status, sa.func.count())
                                     .group_by(Evaluation.model_name, Evaluation.status)).all()
            latest_ids = (sa.select(sa.func.max(Evaluation.id)).where(Evaluation.status == "ok")
                          .group_by(Evaluation.model_name))
            latest = session.scalars(sa.select(Evaluation).where(Evaluation.id.in_(latest_ids))).all()
            features = session.execute(
                sa.select(Evaluation.model_name, FeatureResult.feature, FeatureResult.test,
                          FeatureResult.statistic, FeatureResult.p_value)
                .join(FeatureResult, FeatureResult.evaluation_id == Evaluation.id)
                .where(Evaluation.id.in_(latest_ids))).all()
            newest_ids = sa.select(sa.func.max(Evaluation.id)).group_by(Evaluation.model_name)
            newest = session.scalars(sa.select(Evaluation).where(Evaluation.id.in_(newest_ids))).all()
            last_success = session.execute(
                sa.select(Evaluation.model_name, sa.func.max(Evaluation.finished_at))
                .where(Evaluation.status == "ok").group_by(Evaluation.model_name)).all()
            bucket_columns = [sa.func.sum(sa.case((Evaluation.duration_seconds <= b, 1), else_=0))
                              for b in DURATION_BUCKETS]
            durations = session.execute(
                sa.select(Evaluation.model_name, sa.func.count(), sa.func.sum(Evaluation.duration_seconds),
                          *bucket_columns)
                .where(Evaluation.duration_seconds.is_not(None)).group_by(Evaluation.model_name)).all()

        total = CounterMetricFamily("driftline_evaluations", "Evaluations stored, by model and outcome",
                                    labels=["model", "status"])
        for model, status, count in counts:
            total.add_metric([model, status], count)
        yield total

        drift = GaugeMetricFamily("driftline_drift_detected", "1 when the latest ok evaluation found drift",
                                  labels=["model", "kind"])
        errors = GaugeMetricFamily("driftline_model_error", "Error metrics of the latest ok evaluation",
                                   labels=["model", "metric"])
        version = GaugeMetricFamily("driftline_model_version_info", "Model version of the latest evaluation",
                                    labels=["model", "version"])
        drifted = GaugeMetricFamily("driftline_drifted_features", "Drifted features in the latest evaluation",
                                    labels=["model"])
        for row in latest:
            for kind in ("data_drift", "concept_drift", "prediction_drift"):
                drift.add_metric([row.model_name, kind], float(bool(getattr(row, kind))))
            for metric in ("mse", "mae", "baseline_mse", "baseline_mae"):
                value = getattr(row, metric)
                if value is not None:
                    errors.add_metric([row.model_name, metric], value)
            perf = (row.report or {}).get("performance") or {}
            for metric in CLASSIFICATION_METRICS:  # classifiers: where regression shows MSE
                value = perf.get(metric)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    errors.add_metric([row.model_name, metric], float(value))
            version.add_metric([row.model_name, row.model_version], 1)
            drifted.add_metric([row.model_name], len(row.drifted_features or []))
        yield from (drift, errors, version, drifted)

        window = GaugeMetricFamily("driftline_reference_window_rows",
                                   "Rows collected so far while a version's reference window fills "
                                   "(no drift verdict until rows == size)", labels=["model", "version", "of"])
        missing = GaugeMetricFamily("driftline_reference_missing",
                                    "1 when the latest evaluation found no reference data", labels=["model"])
        for row in newest:
            collecting = (row.report or {}).get("collecting") if row.status == "collecting" else None
            if collecting:
                window.add_metric([row.model_name, row.model_version, str(collecting.get("of"))],
                                  float(collecting.get("rows") or 0))
            missing.add_metric([row.model_name], float(row.status == "no_reference"))
        yield from (window, missing)

        score = GaugeMetricFamily("driftline_feature_drift_score",
                                  "Test statistic per model, feature and test (latest ok evaluation)",
                                  labels=["model", "feature", "test"])
        pvalue = GaugeMetricFamily("driftline_feature_drift_p_value",
                                   "Raw p-value per model, feature and test (latest ok evaluation)",
                                   labels=["model", "feature", "test"])
        for model, feature, test, statistic, p_value in features:
            if statistic is not None:
                score.add_metric([model, feature, test], statistic)
            if p_value is not None:
                pvalue.add_metric([model, feature, test], p_value)
        yield from (score, pvalue)

        success = GaugeMetricFamily("driftline_last_success_timestamp_seconds",
                                    "Unix time of the last ok evaluation per model", labels=["model"])
        for model, finished in last_success:
            if finished is not None:
                if finished.tzinfo is None:  # SQLite returns naive datetimes; they are stored in UTC
                    finished = finished.replace(tzinfo=UTC)
                success.add_metric([model], finished.timestamp())
        yield success

        histogram = HistogramMetricFamily("driftline_evaluation_duration_seconds",
                                          "Time to evaluate one batch", labels=["model"])
        for model, count, total_seconds, *cumulative in durations:
            buckets = [(str(b), int(c or 0)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)]
            buckets.append(("+Inf", int(count)))
            histogram.add_metric([model], buckets, float(total_seconds or 0.0))
        yield histogram


def make_registry(sessions: sessionmaker) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(sessions))
    registry.register(RunBacklogCollector(sessions))
    from monitor.labels import EstimateCollector

    registry.register(EstimateCollector(sessions))
    try:
        from monitor.alerts.metrics import AlertsCollector
    except ImportError:
        return registry
    registry.register(AlertsCollector(sessions))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """This app's database metrics plus the process-wide registry (where monitor.alerts registers)."""
    from prometheus_client import REGISTRY

    return generate_latest(registry) + generate_latest(REGISTRY)
