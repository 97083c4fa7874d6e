"""Ingest: the content digest of each evaluated batch; the outbox of MLflow monitoring runs.

Revision ID: 0003_ingest
Revises: 0002_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_ingest"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None


TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("batch_digest", sa.String(64), nullable=True))
    op.create_table(
        "monitoring_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.Integer, nullable=False, unique=True),
        sa.Column("run_key", sa.String(32), nullable=False, unique=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
    )
    op.create_index("ix_monitoring_runs_due", "monitoring_runs", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_monitoring_runs_due", table_name="monitoring_runs")
    op.drop_table("monitoring_runs")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("batch_digest")
