"""The tracking service's settings, read from the environment once and validated up front."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_ADMIN_PASSWORD = 12
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "password", "admin", "secret", "password1234"}


class ConfigError(Exception):
    """A setting is wrong; the message names the variable and what to do."""


class TrackingSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    mode: Literal["local", "production"] = Field("local", validation_alias="DRIFTLINE_MODE")
    data_dir: Path = Field(Path(".driftline"), validation_alias="DRIFTLINE_DATA_DIR")
    backend_uri: str | None = Field(None, validation_alias="TRACKING_BACKEND_URI")
    artifacts_destination: str | None = Field(None, validation_alias="TRACKING_ARTIFACTS_DESTINATION")
    s3_endpoint_url: str | None = Field(None, validation_alias="MLFLOW_S3_ENDPOINT_URL")
    aws_access_key_id: str | None = Field(None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: str | None = Field(None, validation_alias="AWS_SECRET_ACCESS_KEY")
    host: str = Field("127.0.0.1", validation_alias="TRACKING_HOST")
    port: int = Field(5000, ge=1, le=65535, validation_alias="TRACKING_PORT")
    # One worker by default: uvicorn's multi-worker socket misses TCP_NODELAY, which costs every
    # request ~40 ms (measured 50 ms vs 7.6 ms); one async worker serves a team comfortably.
    workers: int = Field(1, ge=1, le=64, validation_alias="TRACKING_WORKERS")
    allowed_hosts: str = Field("", validation_alias="TRACKING_ALLOWED_HOSTS")
    auth: bool = Field(False, validation_alias="TRACKING_AUTH")
    admin_username: str = Field("admin", validation_alias="MLFLOW_AUTH_ADMIN_USERNAME")
    admin_password: str | None = Field(None, validation_alias="MLFLOW_AUTH_ADMIN_PASSWORD")
    secret_key: str | None = Field(None, validation_alias="MLFLOW_FLASK_SERVER_SECRET_KEY")
    auth_db_uri: str | None = Field(None, validation_alias="TRACKING_AUTH_DB_URI")
    db_wait_seconds: float = Field(30.0, ge=0, le=600, validation_alias="TRACKING_DB_WAIT_SECONDS")
    # Off where a one-shot `python -m tracking migrate` runs first (compose, Kubernetes): the server then
    # only waits for the schema to be at head. On, it migrates under the advisory lock itself.
    migrate_on_start: bool = Field(True, validation_alias="TRACKING_MIGRATE_ON_START")

    @property
    def backend_store_uri(self) -> str:
        if self.backend_uri:
            return self.backend_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def artifacts_uri(self) -> str:
        return self.artifacts_destination or str((self.data_dir / "artifacts").resolve())

    @property
    def uses_s3(self) -> bool:
        return self.artifacts_uri.startswith("s3://")

    @property
    def auth_database_uri(self) -> str:
        if self.auth_db_uri:
            return self.auth_db_uri
        if self.backend_store_uri.startswith("sqlite"):
            return f"sqlite:///{(self.data_dir / 'mlflow-auth.db').resolve()}"
        raise ConfigError(
            "TRACKING_AUTH_DB_URI is not set: with authentication on and a PostgreSQL backend, give the "
            "auth user store its own database, e.g. postgresql+psycopg2://USER:PASS@HOST:5432/mlflow_auth"
        )

    def allowed_host_list(self) -> list[str]:
        """The compose service name and loopback names, each with and without the port."""
        names = ["tracking", "localhost", "127.0.0.1", "[::1]"]
        hosts = [h for name in names for h in (name, f"{name}:{self.port}")]
        hosts += [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
        return list(dict.fromkeys(hosts))

    def check(self) -> None:
        """Refuse settings that cannot work, or that are unsafe outside local mode."""
        if self.mode == "production":
            if not self.backend_uri:
                raise ConfigError("TRACKING_BACKEND_URI is not set: production mode needs a PostgreSQL URL")
            if self.backend_uri.startswith("sqlite"):
                raise ConfigError("TRACKING_BACKEND_URI is SQLite: production mode needs PostgreSQL "
                                  "(SQLite is for DRIFTLINE_MODE=local only)")
            if not self.artifacts_destination:
                raise ConfigError("TRACKING_ARTIFACTS_DESTINATION is not set: production mode needs "
                                  "s3://BUCKET/PREFIX")
        if self.uses_s3:
            if not self.aws_access_key_id or not self.aws_secret_access_key:
                raise ConfigError("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set: the server needs "
                                  "the S3 store's credentials to proxy artifacts (clients do not)")
            if not self.artifacts_uri[len("s3://"):].split("/")[0]:
                raise ConfigError("TRACKING_ARTIFACTS_DESTINATION has no bucket: use s3://BUCKET/PREFIX")
        if self.auth:
            password = self.admin_password or ""
            if len(password) < MIN_ADMIN_PASSWORD or password.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(
                    f"MLFLOW_AUTH_ADMIN_PASSWORD is missing or weak: use at least {MIN_ADMIN_PASSWORD} "
                    "characters (make up writes a random one to .env)"
                )
            key = self.secret_key or ""
            if len(key) < 16 or key.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError("MLFLOW_FLASK_SERVER_SECRET_KEY is missing or weak: set a random value of "
                                  "at least 16 characters shared by all workers")
            self.auth_database_uri  # noqa: B018 - raises ConfigError when it cannot be derived
        elif self.mode == "production":
            raise ConfigError("TRACKING_AUTH is off: production mode requires team authentication "
                              "(set TRACKING_AUTH=true with admin credentials, or DRIFTLINE_MODE=local)")


def load_settings(environ: dict[str, str] | None = None) -> TrackingSettings:
    env = dict(os.environ if environ is None else environ)
    try:
        # An empty variable means unset: compose passes every name, empty when .env leaves it blank.
        settings = TrackingSettings(**{k: v for k, v in env.items() if k in _ALIASES and v.strip()})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = first["loc"][0] if first["loc"] else "settings"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None
    settings.check()
    return settings


_ALIASES = {str(field.validation_alias) for field in TrackingSettings.model_fields.values()}
