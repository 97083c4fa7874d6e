"""Apply the Alembic migrations (monitor/migrations) to the monitor's database: `python -m monitor migrate`.

On PostgreSQL the upgrade holds an advisory lock, so replicas starting together migrate one at a time.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from monitor.db import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x44524D4947  # "DRMIG"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite"):
        path = sa.make_url(database_url).database
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
            config = alembic_config(database_url)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()
