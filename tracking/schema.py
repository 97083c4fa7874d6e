"""The tracking server's one-shot schema step: MLflow's store and the auth user store, migrated once.

Several tracking replicas share one PostgreSQL, so the schema must never be migrated by two of them at
the same time (MLflow guards its own first-run migration with a file lock, which only works on one
host). Every migration here runs under a PostgreSQL advisory lock taken in the database it migrates:
whoever comes second waits, then finds the schema at head and does nothing. `python -m tracking
migrate` runs this step alone (compose's `tracking-migrate` service, the Kubernetes Job); a server
started with `TRACKING_MIGRATE_ON_START=false` only waits for the schema to be at head.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

log = logging.getLogger("tracking")

# pg_advisory_lock takes a bigint; a fixed key shared by every Driftline tracking process (the bytes
# spell "dl-track"). Advisory locks are per database, so the store and the auth DB each have their own.
MIGRATION_LOCK_KEY = int.from_bytes(b"dl-track", "big") & 0x7FFF_FFFF_FFFF_FFFF
AUTH_VERSION_TABLE = "alembic_version_auth"


@dataclass(frozen=True)
class SchemaState:
    """Where one database's schema stands against the revision this MLflow needs."""

    database: str
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        return f"{self.database} is at {self.current or 'no schema'}, this MLflow needs {self.head}"


def _engine(uri: str) -> sa.Engine:
    return sa.create_engine(uri, poolclass=sa.pool.NullPool)


@contextlib.contextmanager
def migration_lock(uri: str) -> Iterator[None]:
    """Hold the migration lock of the database at ``uri``: an advisory lock (SQLite: a file lock)."""
    url = sa.make_url(uri)
    if url.get_backend_name() == "sqlite":
        # Local mode runs one server, but `make up` and a manual `migrate` may still overlap.
        path = Path(f"{url.database}.migrate.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = _engine(uri)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            key = {"k": MIGRATION_LOCK_KEY}
            if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), key).scalar():
                log.info("another process is migrating %s: waiting for it", url.database)
                started = time.monotonic()
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), key)
                log.info("migration lock on %s taken after %.1f s", url.database, time.monotonic() - started)
            try:
                yield
            finally:
                # Closing the session would release it too; unlocking says so before the next step.
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), key)
    finally:
        engine.dispose()


# --- MLflow's tracking store -------------------------------------------------------------------------

def tracking_store_state(uri: str) -> SchemaState:
    from mlflow.store.db.utils import _get_latest_schema_revision, _get_schema_version

    engine = _engine(uri)
    try:
        current = _get_schema_version(engine)
    finally:
        engine.dispose()
    return SchemaState(sa.make_url(uri).database or uri, current, _get_latest_schema_revision())


def migrate_tracking_store(uri: str) -> bool:
    """What `mlflow db upgrade URI` does, under the lock and only when needed; True when it migrated."""
    from mlflow.store.db import utils

    with migration_lock(uri):
        state = tracking_store_state(uri)
        if state.at_head:
            log.info("schema of %s is at head (%s): nothing to migrate", state.database, state.head)
            return False
        log.info("migrating %s from %s to %s", state.database, state.current or "empty", state.head)
        engine = utils.create_sqlalchemy_engine_with_retry(uri)
        try:
            if utils._is_empty_database(engine):
                utils._initialize_tables(engine)
            else:
                utils._upgrade_db(engine)
        finally:
            engine.dispose()
        log.info("schema of %s migrated to %s", state.database, state.head)
        return True


# --- the basic-auth user store -----------------------------------------------------------------------

def _auth_head() -> str:
    from alembic.script import ScriptDirectory
    from mlflow.server.auth.db.utils import _get_alembic_config

    return ScriptDirectory.from_config(_get_alembic_config("")).get_current_head()


def auth_store_state(uri: str) -> SchemaState:
    from alembic.migration import MigrationContext

    engine = _engine(uri)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": AUTH_VERSION_TABLE})
            current = context.get_current_revision()
    finally:
        engine.dispose()
    return SchemaState(sa.make_url(uri).database or uri, current, _auth_head())


def migrate_auth_store(uri: str, admin_username: str, admin_password: str) -> bool:
    """Migrate MLflow's auth user store and create the admin once, under the lock; True when it migrated.

    MLflow's server does both at start in every process; done here first, each replica finds them done.
    """
    # Importing the store imports mlflow.server.auth, which reads the auth config at import time.
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    with migration_lock(uri):
        state = auth_store_state(uri)
        if state.at_head:
            log.info("auth store %s is at head (%s): nothing to migrate", state.database, state.head)
        else:
            log.info("migrating auth store %s from %s to %s", state.database, state.current or "empty",
                     state.head)
        store = SqlAlchemyStore()
        store.init_db(uri)  # MLflow's own auth migration, a no-op at head
        try:
            if not store.has_user(admin_username, use_primary=True):
                store.create_user(admin_username, admin_password, is_admin=True)
                log.info("auth store %s: admin user %r created", state.database, admin_username)
        finally:
            store.engine.dispose()
        if not state.at_head:
            log.info("auth store %s migrated to %s", state.database, state.head)
        return not state.at_head


def wait_until_at_head(states: Callable[[], list[SchemaState]], wait_seconds: float) -> list[SchemaState]:
    """Poll ``states()`` (a list of SchemaState) until every one is at head or the time is up.

    Returns the states not at head (empty when all are): a server started before the one-shot
    migration finished waits for it rather than migrating itself.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        behind = [state for state in states() if not state.at_head]
        if not behind or time.monotonic() >= deadline:
            return behind
        log.info("waiting for the migration step: %s", "; ".join(s.describe() for s in behind))
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))

