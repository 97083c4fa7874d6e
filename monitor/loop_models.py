"""Tables of the closed loop (migration ``0006_challengers``): challengers' paired scores, the
sequential test per (champion, other version), promotion/rollback decisions, retraining requests.

Guarantees carried by the schema:
- one score per (evaluation, version, role): a batch counts once in a test;
- one test per (model, champion version, other version, role), updated under a row lock;
- one decision per test (``uq_loop_decisions_test``): two replicas that both see the test end insert
  the same row, one wins, so an alias is never moved twice for one test;
- one running retraining per model: ``active_model`` is the model's name while a request is open and
  NULL afterwards, and it is unique (NULLs do not collide in PostgreSQL or SQLite).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from monitor.db import Base, utcnow

TZ = sa.DateTime(timezone=True)


class ChallengerScore(Base):
    """One other version (challenger, or `previous` guarding a new champion) scored on the rows of one
    evaluation of the champion: paired mean losses and the batch's relative gain."""

    __tablename__ = "challenger_scores"
    __table_args__ = (
        sa.UniqueConstraint("evaluation_id", "version", "role", name="uq_challenger_scores_eval_version"),
        sa.Index("ix_challenger_scores_model", "model_name", "id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluations.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(sa.String(255))
    champion_version: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(64))
    alias: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))  # challenger | guard
    loss: Mapped[str] = mapped_column(sa.String(32))  # squared_error | log_loss | zero_one
    n_rows: Mapped[int] = mapped_column(sa.Integer)
    champion_loss: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    other_loss: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    relative_gain: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    metrics: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    test_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    decision: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "evaluation_id": self.evaluation_id, "model": self.model_name,
                "champion_version": self.champion_version, "version": self.version, "alias": self.alias,
                "role": self.role, "loss": self.loss, "n_rows": self.n_rows,
                "champion_loss": self.champion_loss, "loss_value": self.other_loss,
                "relative_gain": self.relative_gain, "metrics": self.metrics, "error": self.error,
                "test_id": self.test_id, "decision": self.decision,
                "created_at": self.created_at.isoformat() if self.created_at else None}


class ChallengerTest(Base):
    """The sequential test of one other version against one champion version (its state survives
    restarts: it is this row)."""

    __tablename__ = "challenger_tests"
    __table_args__ = (
        sa.UniqueConstraint("model_name", "champion_version", "version", "role", name="uq_challenger_tests"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    champion_version: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(64))
    alias: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))  # challenger | guard
    alpha: Mapped[float] = mapped_column(sa.Float)
    state: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    batches: Mapped[int] = mapped_column(sa.Integer, default=0)
    outcome: Mapped[str] = mapped_column(sa.String(32), default="continue")
    started_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model_name, "champion_version": self.champion_version,
                "version": self.version, "alias": self.alias, "role": self.role, "alpha": self.alpha,
                "batches": self.batches, "outcome": self.outcome, "state": self.state,
                "started_at": _iso(self.started_at), "updated_at": _iso(self.updated_at),
                "decided_at": _iso(self.decided_at)}


class LoopDecision(Base):
    """What a finished test led to: promote (auto), notify (challenger_ready), record (manual),
    rollback, or nothing (challenger worse). Executed once by whoever claims it."""

    __tablename__ = "loop_decisions"
    __table_args__ = (sa.UniqueConstraint("test_id", name="uq_loop_decisions_test"),
                      sa.Index("ix_loop_decisions_status", "status", "id"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    test_id: Mapped[int] = mapped_column(sa.Integer)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(16))  # promote | notify | record | rollback | reject
    policy: Mapped[str] = mapped_column(sa.String(16))
    from_version: Mapped[str] = mapped_column(sa.String(64))  # the champion when the test ended
    to_version: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | done | failed
    evidence: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    actor: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "test_id": self.test_id, "model": self.model_name, "action": self.action,
                "policy": self.policy, "from_version": self.from_version, "to_version": self.to_version,
                "status": self.status, "evidence": self.evidence, "reason": self.reason,
                "actor": self.actor, "error": self.error, "attempts": self.attempts,
                "created_at": _iso(self.created_at), "done_at": _iso(self.done_at)}


class RetrainingRequest(Base):
    """A retraining the monitor asked for (persisting concept drift / performance degradation)."""

    __tablename__ = "retraining_requests"
    __table_args__ = (sa.UniqueConstraint("active_model", name="uq_retraining_requests_active"),
                      sa.Index("ix_retraining_requests_model", "model_name", "id"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    active_model: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    champion_version: Mapped[str] = mapped_column(sa.String(64))
    trigger: Mapped[str] = mapped_column(sa.String(64))  # the alert that asked
    evaluation_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    launcher: Mapped[str] = mapped_column(sa.String(16))  # subprocess | webhook | poll
    status: Mapped[str] = mapped_column(sa.String(16), default="requested")
    # requested | running | succeeded | failed
    batches: Mapped[list] = mapped_column(sa.JSON, default=list)  # evaluation ids the job trains on
    version: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)  # the new challenger
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    requested_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(TZ, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model_name, "champion_version": self.champion_version,
                "trigger": self.trigger, "evaluation_id": self.evaluation_id, "launcher": self.launcher,
                "status": self.status, "batches": self.batches, "version": self.version,
                "error": self.error, "requested_at": _iso(self.requested_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at)}


class LabelledBatch(Base):
    """The rows of a recent labelled batch, kept for retraining (the last MONITOR_RETRAIN_BATCHES per
    model; older ones are deleted in the commit that adds a new one)."""

    __tablename__ = "labelled_batches"
    __table_args__ = (sa.Index("ix_labelled_batches_model", "model_name", "id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(255))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    evaluation_id: Mapped[int] = mapped_column(sa.Integer)
    batch_id: Mapped[str] = mapped_column(sa.String(255))
    n_rows: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(TZ, default=utcnow)
    # Parquet; last: SQLite fills it in place only as the record's last field (0014_blob_last).
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
