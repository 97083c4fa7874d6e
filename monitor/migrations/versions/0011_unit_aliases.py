"""Scale out: each round's work unit carries its model's aliases and tags from the planner's registry
listing, so the replicas that claim it need no listing or per-model registry read of their own.

Revision ID: 0011_unit_aliases
Revises: 0009_work_claims
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_unit_aliases"
down_revision = "0010_run_starts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("work_claims", sa.Column("listed", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("work_claims", "listed")
