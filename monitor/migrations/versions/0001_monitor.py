"""Monitor tables: evaluations, feature_results, reference_profiles, processed_objects.

Revision ID: 0001_monitor
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_monitor"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(255), nullable=True),
        sa.Column("batch_id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("scenario", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("data_drift", sa.Boolean, nullable=True),
        sa.Column("concept_drift", sa.Boolean, nullable=True),
        sa.Column("prediction_drift", sa.Boolean, nullable=True),
        sa.Column("drifted_features", sa.JSON, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=True),
        sa.Column("mse", sa.Float, nullable=True),
        sa.Column("mae", sa.Float, nullable=True),
        sa.Column("baseline_mse", sa.Float, nullable=True),
        sa.Column("baseline_mae", sa.Float, nullable=True),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.UniqueConstraint("model_name", "batch_id", name="uq_evaluations_model_batch"),
    )
    op.create_index("ix_evaluations_model_id", "evaluations", ["model_name", "id"])
    op.create_table(
        "feature_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.Integer, sa.ForeignKey("evaluations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("feature", sa.String(255), nullable=False),
        sa.Column("test", sa.String(64), nullable=False),
        sa.Column("statistic", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("adjusted_p_value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("drift", sa.Boolean, nullable=True),
    )
    op.create_index("ix_feature_results_evaluation_id", "feature_results", ["evaluation_id"])
    op.create_table(
        "reference_profiles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("profile", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("model_name", "model_version", "config_hash", name="uq_reference_profiles_key"),
    )
    op.create_table(
        "processed_objects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("etag", sa.String(255), nullable=False),
        sa.Column("evaluation_id", sa.Integer, nullable=True),
        sa.Column("processed_at", TZ, nullable=False),
        sa.UniqueConstraint("model_name", "bucket", "key", "etag", name="uq_processed_objects"),
    )


def downgrade() -> None:
    op.drop_table("processed_objects")
    op.drop_table("reference_profiles")
    op.drop_index("ix_feature_results_evaluation_id", table_name="feature_results")
    op.drop_table("feature_results")
    op.drop_index("ix_evaluations_model_id", table_name="evaluations")
    op.drop_table("evaluations")
