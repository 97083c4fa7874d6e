"""MLflow run outbox: a durable mark that a run's creation may have begun.

The run logger skips the run-key search (one ``search_runs`` per run, a query that grows with the
experiment) on a row's first attempt. The mark is written in its own commit before the run is
created: a logger that dies after ``create_run`` leaves it, so the next attempt searches by the key.

Revision ID: 0010_run_starts
Revises: 0009_work_claims
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_run_starts"
down_revision = "0009_work_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_run_starts",
        sa.Column("run_key", sa.String(32), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitoring_run_starts")
