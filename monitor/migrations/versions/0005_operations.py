"""Operations: missed scheduler slots, alert episodes (full history), the evaluation that fired an alert.

Revision ID: 0005_operations
Revises: 0002_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_operations"
down_revision = "0004_team_models"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "missed_slots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("slot", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("dependency", sa.String(64), nullable=True),
        sa.Column("missed_at", TZ, nullable=False),
        sa.Column("caught_up_slot", sa.BigInteger, nullable=True),
        sa.Column("caught_up_evaluation_id", sa.Integer, nullable=True),
        sa.Column("caught_up_at", TZ, nullable=True),
        sa.UniqueConstraint("model_name", "slot", name="uq_missed_slots_model_slot"),
    )
    op.create_index("ix_missed_slots_open", "missed_slots", ["model_name", "caught_up_at"])

    op.create_table(
        "alert_episodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("alertname", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=True),
        sa.Column("fired_evaluation_id", sa.Integer, nullable=True),
        sa.Column("resolved_evaluation_id", sa.Integer, nullable=True),
        sa.Column("resolved_by", sa.Text, nullable=True),
    )
    op.create_index("ix_alert_episodes_alert_id", "alert_episodes", ["alert_id"])
    op.create_index("ix_alert_episodes_model_name", "alert_episodes", ["model_name"])
    op.create_index("ix_alert_episodes_ends_at", "alert_episodes", ["ends_at"])

    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("fired_evaluation_id", sa.Integer, nullable=True))
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.create_index("ix_alert_deliveries_sent_at", ["sent_at"])


def downgrade() -> None:
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.drop_index("ix_alert_deliveries_sent_at")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("fired_evaluation_id")
    op.drop_table("alert_episodes")
    op.drop_table("missed_slots")
