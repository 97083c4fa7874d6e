"""Alembic environment: the monitor's tables plus, when installed, the alerts tables (monitor.alerts)."""

from __future__ import annotations

import contextlib

from alembic import context

import monitor.loop_models  # noqa: F401 - the closed loop's tables (revision 0006_challengers)
import monitor.models  # noqa: F401 - registers the monitor's tables on Base.metadata
from monitor.db import Base, make_engine

with contextlib.suppress(ImportError):
    import monitor.alerts.models  # noqa: F401 - the alerts engineer's tables (revision 0002_alerts)

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:  # noqa: ANN001 - sqlalchemy Connection
    # render_as_batch: SQLite cannot ALTER most things; batch mode rewrites the table instead.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported: run `python -m monitor migrate`")
run_migrations_online()
