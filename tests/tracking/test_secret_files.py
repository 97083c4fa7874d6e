"""Files holding secrets are created private (0600) whatever the umask: the auth ini, the auth user
store on SQLite (and its journal), and the stack's .env."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from ops import envfile
from tracking.entrypoint import write_auth_config
from tracking.settings import load_settings


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_auth_ini_and_sqlite_user_store_are_owner_only(tmp_path, open_umask):
    settings = load_settings({"DRIFTLINE_MODE": "local", "DRIFTLINE_DATA_DIR": str(tmp_path),
                              "TRACKING_AUTH": "true", "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
                              "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-admin-password",
                              "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32})
    ini = write_auth_config(settings)
    assert _mode(ini) == 0o600 and "database_uri" in ini.read_text()
    database = tmp_path / "mlflow-auth.db"
    assert _mode(database) == 0o600
    # What MLflow does next: open it and write its tables (SQLite keeps the mode, journals included).
    engine = sa.create_engine(settings.auth_database_uri)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, password_hash TEXT)"))
        conn.execute(sa.text("INSERT INTO users (password_hash) VALUES ('x')"))
    engine.dispose()
    assert _mode(database) == 0o600
    assert all(_mode(p) == 0o600 for p in tmp_path.glob("mlflow-auth.db*"))
    # Rewritten over an existing world-readable file: still private.
    ini.chmod(0o644)
    assert _mode(write_auth_config(settings)) == 0o600


def test_env_file_is_created_owner_only(tmp_path, open_umask):
    (tmp_path / ".env.example").write_text(envfile.REPO.joinpath(".env.example").read_text())
    path, created = envfile.ensure_env_file(tmp_path)
    assert created and _mode(path) == 0o600
