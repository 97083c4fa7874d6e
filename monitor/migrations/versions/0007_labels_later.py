"""Labels later: unlabelled batches completed when their labels arrive, and label-free estimates.

Revision ID: 0007_labels_later
Revises: 0006_challengers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_labels_later"
down_revision = "0006_challengers"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("labels", sa.String(16), nullable=True))
        batch.add_column(sa.Column("n_labelled", sa.Integer, nullable=True))
        batch.add_column(sa.Column("labels_received_at", TZ, nullable=True))
        batch.add_column(sa.Column("estimate", sa.JSON, nullable=True))
    op.create_table(
        "batch_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.Integer, sa.ForeignKey("evaluations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("batch_id", sa.String(255), nullable=False),
        sa.Column("id_column", sa.String(255), nullable=True),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=True),  # Parquet: inputs, predictions, probabilities
        sa.Column("labels_digest", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("received_at", TZ, nullable=True),
        sa.UniqueConstraint("evaluation_id", name="uq_batch_labels_evaluation"),
    )
    op.create_table(
        "performance_estimators",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("estimator", sa.LargeBinary, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("model_name", "model_version", "key", name="uq_performance_estimators_key"),
    )


def downgrade() -> None:
    op.drop_table("performance_estimators")
    op.drop_table("batch_labels")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("estimate")
        batch.drop_column("labels_received_at")
        batch.drop_column("n_labelled")
        batch.drop_column("labels")
