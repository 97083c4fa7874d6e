"""Scale out: the work units of scheduled rounds, claimed by every monitor replica.

Revision ID: 0009_work_claims
Revises: 0007_labels_later
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_work_claims"
down_revision = "0007_labels_later"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "work_claims",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("slot", sa.BigInteger, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(36), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("done_by", sa.String(36), nullable=True),
        sa.Column("evaluations", sa.Integer, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("done_at", TZ, nullable=True),
        sa.UniqueConstraint("slot", "model_name", name="uq_work_claims_slot_model"),
    )
    op.create_index("ix_work_claims_pending", "work_claims", ["status", "slot"])


def downgrade() -> None:
    op.drop_index("ix_work_claims_pending", table_name="work_claims")
    op.drop_table("work_claims")
