"""Challengers on live batches, their sequential tests, promotion/rollback decisions, retraining
requests and the labelled rows kept for retraining.

Revision ID: 0006_challengers
Revises: 0005_operations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_challengers"
down_revision = "0005_operations"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "challenger_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.Integer, sa.ForeignKey("evaluations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("loss", sa.String(32), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("champion_loss", sa.Float, nullable=True),
        sa.Column("other_loss", sa.Float, nullable=True),
        sa.Column("relative_gain", sa.Float, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("test_id", sa.Integer, nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("evaluation_id", "version", "role", name="uq_challenger_scores_eval_version"),
    )
    op.create_index("ix_challenger_scores_model", "challenger_scores", ["model_name", "id"])

    op.create_table(
        "challenger_tests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("batches", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.UniqueConstraint("model_name", "champion_version", "version", "role", name="uq_challenger_tests"),
    )

    op.create_table(
        "loop_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("test_id", sa.Integer, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("from_version", sa.String(64), nullable=False),
        sa.Column("to_version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
        sa.UniqueConstraint("test_id", name="uq_loop_decisions_test"),
    )
    op.create_index("ix_loop_decisions_status", "loop_decisions", ["status", "id"])

    op.create_table(
        "retraining_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("active_model", sa.String(255), nullable=True),
        sa.Column("champion_version", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("evaluation_id", sa.Integer, nullable=True),
        sa.Column("launcher", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("batches", sa.JSON, nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("active_model", name="uq_retraining_requests_active"),
    )
    op.create_index("ix_retraining_requests_model", "retraining_requests", ["model_name", "id"])

    op.create_table(
        "labelled_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("evaluation_id", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.String(255), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_labelled_batches_model", "labelled_batches", ["model_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_labelled_batches_model", table_name="labelled_batches")
    op.drop_table("labelled_batches")
    op.drop_index("ix_retraining_requests_model", table_name="retraining_requests")
    op.drop_table("retraining_requests")
    op.drop_index("ix_loop_decisions_status", table_name="loop_decisions")
    op.drop_table("loop_decisions")
    op.drop_table("challenger_tests")
    op.drop_index("ix_challenger_scores_model", table_name="challenger_scores")
    op.drop_table("challenger_scores")
