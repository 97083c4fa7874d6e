"""A large unlabelled batch's kept rows as slices written beside its drift tests (``kept_row_parts``).

On PostgreSQL the rows of a batch above ``IN_MEMORY_ROWS`` were one ``bytea`` value copied in the
evaluation's commit (2.8 s of a 4.8 s 1M-row push). They are now Parquet slices of 65,536 rows, each a row
here, copied in their own transaction while the batch is scored and claimed by the ``batch_labels``
row in the evaluation's commit. ``batch_labels.data`` stays for smaller batches and for SQLite.

Revision ID: 0015_kept_row_parts
Revises: 0014_blob_last
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_kept_row_parts"
down_revision = "0014_blob_last"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kept_row_parts",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("batch_labels_id", sa.Integer,
                  sa.ForeignKey("batch_labels.id", ondelete="CASCADE"), nullable=True),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_kept_row_parts_batch_labels_id", "kept_row_parts", ["batch_labels_id"])
    if op.get_bind().dialect.name == "postgresql":  # Parquet is compressed already (0013)
        op.execute('ALTER TABLE "kept_row_parts" ALTER COLUMN "data" SET STORAGE EXTERNAL')


def downgrade() -> None:
    op.drop_index("ix_kept_row_parts_batch_labels_id", table_name="kept_row_parts")
    op.drop_table("kept_row_parts")
