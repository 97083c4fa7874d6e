"""Labels later, hardened: the reference a pending batch was scored against, and late MLflow metrics
in an outbox of their own.

Revision ID: 0012_labels_pinned
Revises: 0011_unit_aliases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_labels_pinned"
down_revision = "0011_unit_aliases"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("batch_labels") as batch:
        # The profile in force at push (ProfileStore key) and the drift settings it was scored with:
        # the labels are scored against the same, whatever was uploaded meanwhile.
        batch.add_column(sa.Column("profile_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("drift_settings", sa.JSON, nullable=True))
        # The challengers in place at push, scored on the same rows when the labels come.
        batch.add_column(sa.Column("challengers", sa.JSON, nullable=True))
    op.create_table(
        "late_run_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.Integer, nullable=False, unique=True),
        sa.Column("labels_key", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
    )
    op.create_index("ix_late_run_metrics_due", "late_run_metrics", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_late_run_metrics_due", table_name="late_run_metrics")
    op.drop_table("late_run_metrics")
    with op.batch_alter_table("batch_labels") as batch:
        batch.drop_column("challengers")
        batch.drop_column("drift_settings")
        batch.drop_column("profile_key")
