"""Fresh PostgreSQL databases on the machine's server, one per test or test session."""

from __future__ import annotations

import os
import uuid

import sqlalchemy as sa

ADMIN_URL = os.environ.get("DRIFTLINE_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _admin_engine() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def database_url(name: str) -> str:
    return sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_database(prefix: str = "dl") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}".lower()
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return database_url(name)


def drop_database(url: str) -> None:
    name = sa.make_url(url).database
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def check_server() -> None:
    """Fail with a message saying how to start PostgreSQL, rather than a wall of tracebacks."""
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {ADMIN_URL}: start it "
            "(pg_ctlcluster <version> main start) or set DRIFTLINE_TEST_PG_URL"
        ) from exc
