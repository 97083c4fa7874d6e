"""On SQLite, the Parquet column of the tables filled in pieces is the last column.

``insert_with_file`` sizes a row's BLOB with ``zeroblob(n)`` and then writes it in pieces. SQLite
keeps a zeroblob unmaterialised only when it is the last field of the record; with columns after it,
the ``UPDATE`` built the whole zero-filled record in memory (twice the BLOB: keeping a 1M x 20
unlabelled batch's rows peaked 312 MB higher, 4.6x the batch instead of 2.4x). SQLite cannot move a
column, so the two tables are rebuilt with ``data`` last, their rows copied. PostgreSQL writes these
rows by COPY and is left as it is. The downgrade leaves the order: nothing depends on it.

Revision ID: 0014_blob_last
Revises: 0013_parquet_storage
"""

from __future__ import annotations

from alembic import op

revision = "0014_blob_last"
down_revision = "0013_parquet_storage"
branch_labels = None
depends_on = None

# Each table's columns in their new order, "data" last.
ORDERS = {
    "labelled_batches": ("id", "model_name", "model_version", "evaluation_id", "batch_id", "n_rows",
                         "created_at", "data"),
    "batch_labels": ("id", "evaluation_id", "model_name", "batch_id", "id_column", "n_rows",
                     "labels_digest", "created_at", "received_at", "profile_key", "drift_settings",
                     "challengers", "data"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, order in ORDERS.items():
        with op.batch_alter_table(table, recreate="always", partial_reordering=[order]):
            pass


def downgrade() -> None:
    pass
