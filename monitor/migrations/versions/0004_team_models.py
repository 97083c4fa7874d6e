"""Team models: uploaded references, reference windows, and what each evaluation was measured against.

Revision ID: 0004_team_models
Revises: 0002_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_team_models"
down_revision = "0003_ingest"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reference_uploads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),  # Parquet
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("model_name", "model_version", name="uq_reference_uploads_version"),
    )
    op.create_table(
        "reference_window_rows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("evaluation_id", sa.Integer, nullable=True),
        sa.Column("data", sa.LargeBinary, nullable=False),  # Parquet: the batch's labelled rows
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_reference_window_rows_version", "reference_window_rows",
                    ["model_name", "model_version", "id"])
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("task", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reference_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reference_source", sa.Text, nullable=True))
        batch.add_column(sa.Column("accuracy", sa.Float, nullable=True))
        batch.add_column(sa.Column("baseline_accuracy", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        for column in ("baseline_accuracy", "accuracy", "reference_source", "reference_kind", "task"):
            batch.drop_column(column)
    op.drop_index("ix_reference_window_rows_version", table_name="reference_window_rows")
    op.drop_table("reference_window_rows")
    op.drop_table("reference_uploads")
