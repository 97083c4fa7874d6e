"""The monitor's tables: evaluations (the contract with monitor/alerts), per-feature results,
persisted reference profiles and the S3 inbox's processed objects.

Schema changes go through Alembic (monitor/migrations); ``Base.metadata`` is only the target it diffs against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from monitor.db import Base, utcnow

TZ = sa.DateTime(timezone=True)
# Ids are 32-bit integers in the schema: a bigger id in a URL is simply not found (never a DB error).
MAX_ROW_ID = 2**31 - 1


class Evaluation(Base):
    """One batch scored against one model version. Unique per (model_name, batch_id): a batch is
    evaluated once however many workers or replicas see it."""

    __tablename__ = "evaluations"
    __table_args__ = (
        sa.UniqueConstraint("model_name", "batch_id", name="uq_evaluations_model_batch"),
        sa.Index("ix_evaluations_model_id", "model_name", "id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    alias: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    batch_id: Mapped[str] = mapped_column(sa.String(255))
    source: Mapped[str] = mapped_column(sa.String(32))  # simulated | s3 | push | manual
    scenario: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16))  # ok | failed | rejected
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    data_drift: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    concept_drift: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    prediction_drift: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    drifted_features: Mapped[list] = mapped_column(sa.JSON, default=list)
    n_rows: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    mse: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    mae: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    baseline_mse: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    baseline_mae: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    report: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    started_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    # Beyond the contract: kept so /metrics can build the duration histogram in SQL.
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    # sha256 of the batch's rows (monitor/sources/digest.py); a re-push with other rows is a conflict.
    batch_digest: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # Team models (0004): regression | classification, and the reference the batch was measured against.
    task: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    reference_kind: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    reference_source: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    baseline_accuracy: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    # Labels later (0007): at_push | pending | received; the label-free estimate with its interval
    # (and, once labels came, its error); rows that got a label.
    labels: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    n_labelled: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    labels_received_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    estimate: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)

    features: Mapped[list[FeatureResult]] = relationship(
        back_populates="evaluation", cascade="all, delete-orphan", order_by="FeatureResult.id")

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "model_name": self.model_name, "model_version": self.model_version,
            "alias": self.alias, "batch_id": self.batch_id, "source": self.source, "scenario": self.scenario,
            "status": self.status, "error": self.error, "data_drift": self.data_drift,
            "concept_drift": self.concept_drift, "prediction_drift": self.prediction_drift,
            "drifted_features": list(self.drifted_features or []), "n_rows": self.n_rows,
            "mse": self.mse, "mae": self.mae, "baseline_mse": self.baseline_mse,
            "baseline_mae": self.baseline_mae, "mlflow_run_id": self.mlflow_run_id,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "duration_seconds": self.duration_seconds, "task": self.task,
            "accuracy": self.accuracy, "baseline_accuracy": self.baseline_accuracy,
            "reference": {"kind": self.reference_kind, "source": self.reference_source},
            "performance": (self.report or {}).get("performance") or {},
            "collecting": (self.report or {}).get("collecting"),
            "labels": self.labels, "n_labelled": self.n_labelled,
            "labels_received_at": _iso(self.labels_received_at), "estimate": self.estimate,
        }

    def full(self, feature_results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Summary, report and feature rows; ``feature_results``: those rows as just inserted (their
        ``as_dict`` forms), so a new evaluation is not read back."""
        if feature_results is None:
            feature_results = [f.as_dict() for f in self.features]
        return {**self.summary(), "report": self.report, "feature_results": feature_results}


class FeatureResult(Base):
    """One drift test on one feature of one evaluation (the rows behind per-feature charts and metrics)."""

    __tablename__ = "feature_results"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluations.id", ondelete="CASCADE"),
                                               index=True)
    feature: Mapped[str] = mapped_column(sa.String(255))
    test: Mapped[str] = mapped_column(sa.String(64))
    statistic: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    adjusted_p_value: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    drift: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)

    evaluation: Mapped[Evaluation] = relationship(back_populates="features")

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "test": self.test, "statistic": self.statistic,
                "p_value": self.p_value, "adjusted_p_value": self.adjusted_p_value,
                "threshold": self.threshold, "drift": self.drift}


class MonitoringRun(Base):
    """The MLflow run of one ok evaluation, written in the evaluation's transaction and logged after
    the response by ``monitor.monitoring_runs`` (an outbox: nothing lost across restarts).

    ``run_key`` is a tag on the MLflow run: a run created before a crash is found by it and reused,
    so an evaluation never gets two runs."""

    __tablename__ = "monitoring_runs"
    __table_args__ = (sa.Index("ix_monitoring_runs_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(sa.Integer, unique=True)
    run_key: Mapped[str] = mapped_column(sa.String(32), unique=True)
    payload: Mapped[dict] = mapped_column(sa.JSON)  # experiment tags, metrics, evaluation.json
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | done
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    run_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)


class MonitoringRunStart(Base):
    """A run's creation may have begun (written in its own commit before ``create_run``): its next
    attempt searches MLflow by the run key; a first attempt, with no mark, skips that search.
    Deleted with the outbox row's completion. Migration ``0010_run_starts``."""

    __tablename__ = "monitoring_run_starts"

    run_key: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class StoredProfile(Base):
    """A fitted reference profile, so a restart does not re-download and re-fit reference data."""

    __tablename__ = "reference_profiles"
    __table_args__ = (sa.UniqueConstraint("model_name", "model_version", "config_hash",
                                          name="uq_reference_profiles_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    config_hash: Mapped[str] = mapped_column(sa.String(64))
    profile: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class ProcessedObject(Base):
    """An S3 inbox object already evaluated; the unique key makes each file count once across restarts."""

    __tablename__ = "processed_objects"
    __table_args__ = (
        sa.UniqueConstraint("model_name", "bucket", "key", "etag", name="uq_processed_objects"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    bucket: Mapped[str] = mapped_column(sa.String(255))
    key: Mapped[str] = mapped_column(sa.String(1024))
    etag: Mapped[str] = mapped_column(sa.String(255))
    evaluation_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    processed_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class ReferenceUpload(Base):
    """A reference a user uploaded for one model version (API or CLI), stored as Parquet."""

    __tablename__ = "reference_uploads"
    __table_args__ = (
        sa.UniqueConstraint("model_name", "model_version", name="uq_reference_uploads_version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    n_rows: Mapped[int] = mapped_column(sa.Integer)
    columns: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class ReferenceWindowRows(Base):
    """Labelled rows received for a version while its reference window fills (one row per batch)."""

    __tablename__ = "reference_window_rows"
    __table_args__ = (sa.Index("ix_reference_window_rows_version", "model_name", "model_version", "id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    evaluation_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    n_rows: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class MissedSlot(Base):
    """A scheduled slot a model was not evaluated in (a dependency was down, or the model was backing
    off), and the later evaluation that caught the model up. Migration ``0005_operations``."""

    __tablename__ = "missed_slots"
    __table_args__ = (sa.UniqueConstraint("model_name", "slot", name="uq_missed_slots_model_slot"),
                      sa.Index("ix_missed_slots_open", "model_name", "caught_up_at"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))  # "*" when the model list was unknown
    slot: Mapped[int] = mapped_column(sa.BigInteger)
    reason: Mapped[str] = mapped_column(sa.Text)
    dependency: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    missed_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    caught_up_slot: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    caught_up_evaluation_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    caught_up_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model_name, "slot": self.slot, "reason": self.reason,
                "dependency": self.dependency, "missed_at": _iso(self.missed_at),
                "caught_up_slot": self.caught_up_slot,
                "caught_up_evaluation_id": self.caught_up_evaluation_id,
                "caught_up_at": _iso(self.caught_up_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class BatchLabels(Base):
    """What an unlabelled batch needs to be completed when its labels come (inputs, predictions,
    probabilities, the id column: Parquet, zstd), then the digest of the labels it got.

    ``data`` is dropped once the labels are in (the digest answers a repeat: same labels 200, other
    labels 409), and pruned after ``ALERT_HISTORY_RETENTION_DAYS`` when they never come."""

    __tablename__ = "batch_labels"
    __table_args__ = (sa.UniqueConstraint("evaluation_id", name="uq_batch_labels_evaluation"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluations.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(sa.String(255))
    batch_id: Mapped[str] = mapped_column(sa.String(255))
    id_column: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    n_rows: Mapped[int] = mapped_column(sa.Integer)
    labels_digest: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    received_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    # The reference in force at push (``ProfileStore`` key) and the drift settings it was scored
    # with: the labels are scored against the same, whatever was uploaded meanwhile (null: older rows).
    profile_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    drift_settings: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    # The challengers (and rollback guard) in place at push: scored on these rows when labels come.
    challengers: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    # Last: SQLite fills it in place only as the record's last field (migration 0014_blob_last).
    data: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)


class KeptRowPart(Base):
    """One slice of a large unlabelled batch's kept rows (its own Parquet file, zstd), PostgreSQL only.

    Written while the batch is still being scored, in its own transaction under a fresh ``key``, and
    claimed by the evaluation's ``batch_labels`` row in the evaluation's commit (``batch_labels_id``).
    A 1M-row batch's rows as one 160 MB value took 2.8 s in the evaluation's commit; as 16 slices
    written beside the drift tests they are done when the verdict is. Unclaimed slices (the evaluation
    failed, was a repeat, or the process died) are deleted by the push or, after an hour, by the
    retention prune (monitor/alerts/retention.py)."""

    __tablename__ = "kept_row_parts"

    key: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    batch_labels_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("batch_labels.id", ondelete="CASCADE"), nullable=True, index=True)
    n_rows: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class LateRunMetrics(Base):
    """Figures known only when the labels came, for an evaluation's MLflow run: an outbox row of its
    own (``monitor.late_metrics``), logged into the run once the run exists (``monitoring_runs`` is
    done), so a run being logged while the labels arrive never swallows them."""

    __tablename__ = "late_run_metrics"
    __table_args__ = (sa.Index("ix_late_run_metrics_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(sa.Integer, unique=True)
    labels_key: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict] = mapped_column(sa.JSON)  # metrics, labels.json
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | done
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)


class StoredEstimator(Base):
    """The label-free performance estimator of a version, fitted with its reference profile.

    A scikit-learn model serialised with pickle: only the monitor writes this table, and the key
    carries the scikit-learn version, so another version refits instead of unpickling."""

    __tablename__ = "performance_estimators"
    __table_args__ = (sa.UniqueConstraint("model_name", "model_version", "key",
                                          name="uq_performance_estimators_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str] = mapped_column(sa.String(255))
    estimator: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)  # None: none possible
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)


class WorkClaim(Base):
    """One unit of a scheduled round: a model in a slot. Every replica plans the round (inserts the
    units, ignoring ones already there) and claims pending units with ``FOR UPDATE SKIP LOCKED`` and a
    lease (monitor.claims); a unit whose claimer died is claimed again once its lease ends.
    Migration ``0009_work_claims``."""

    __tablename__ = "work_claims"
    __table_args__ = (sa.UniqueConstraint("slot", "model_name", name="uq_work_claims_slot_model"),
                      sa.Index("ix_work_claims_pending", "status", "slot"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    slot: Mapped[int] = mapped_column(sa.BigInteger)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending|done|failed|expired
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    done_by: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    evaluations: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    # {"aliases": {alias: version}, "tags": {…}} from the planner's listing (migration
    # ``0011_unit_aliases``): the claimer reads the model's challengers from it, no registry call.
    listed: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
