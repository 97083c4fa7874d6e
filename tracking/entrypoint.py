"""Start the team's MLflow server: the one entrypoint for the container and for local mode.

`python -m tracking [serve]` starts the server; `python -m tracking migrate` is the one-shot schema
step (compose's `tracking-migrate` service, the Kubernetes Job) and exits.

Order matters: settings are checked first (a clear line, exit 2), then the database is awaited
with a bounded retry (exit 3). The schema is migrated under a PostgreSQL advisory lock
(tracking/schema.py), so replicas started at the same moment never race on it; with
`TRACKING_MIGRATE_ON_START=false` the server leaves that to the one-shot step and waits for the
schema to be at head. The artifact bucket is created if missing, and only then is `mlflow server` exec'd.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from tracking import schema
from tracking.proxied_s3 import to_proxied
from tracking.settings import ConfigError, TrackingSettings, load_settings

EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_MIGRATION = 4

log = logging.getLogger("tracking")


class DependencyError(Exception):
    """A service the tracking server needs is unreachable; the message says which and what to check."""


def redact(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        import sqlalchemy as sa

        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown without anything after '@'
        return url.split("@")[-1]


def wait_for_database(uri: str, wait_seconds: float) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if uri.startswith("sqlite"):
        path = sa.make_url(uri).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return
    try:
        url = sa.make_url(uri)
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(
            f"TRACKING_BACKEND_URI is not a valid database URL ({exc.__class__.__name__}): "
            "use postgresql+psycopg2://USER:PASSWORD@HOST:5432/DBNAME"
        ) from None
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            return
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            if time.monotonic() + min(2.0, 0.25 * attempt) > deadline:
                raise DependencyError(
                    f"database {redact(uri)} is not reachable after {wait_seconds:.0f} s ({reason}): "
                    "check TRACKING_BACKEND_URI and that PostgreSQL is running"
                ) from None
            log.info("waiting for database %s (%s)", redact(uri), reason)
            time.sleep(min(2.0, 0.25 * attempt))


def ensure_bucket(settings: TrackingSettings) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = settings.artifacts_uri[len("s3://"):].split("/")[0]
    s3 = boto3.client(
        "s3", endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id, aws_secret_access_key=settings.aws_secret_access_key,
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"),
    )
    where = settings.s3_endpoint_url or "AWS S3"
    deadline = time.monotonic() + settings.db_wait_seconds
    while True:
        try:
            s3.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchBucket", "NotFound"}:
                log.info("creating bucket %s at %s", bucket, where)
                try:
                    s3.create_bucket(Bucket=bucket)
                except ClientError as create_exc:
                    # Another replica (or the migrate step) created it a moment ago.
                    if create_exc.response.get("Error", {}).get("Code") not in {
                            "BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
                return
            if code in {"403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}:
                raise ConfigError(
                    f"the S3 store at {where} refused the credentials for bucket {bucket!r} ({code}): "
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ) from None
            raise DependencyError(f"the S3 store at {where} answered {code} for bucket {bucket!r}") from None
        except (BotoCoreError, OSError) as exc:
            if time.monotonic() > deadline:
                raise DependencyError(
                    f"the S3 store at {where} is not reachable ({exc.__class__.__name__}): "
                    "check MLFLOW_S3_ENDPOINT_URL and that the store is running"
                ) from None
            time.sleep(1.0)


def write_auth_config(settings: TrackingSettings) -> Path:
    """MLflow's basic-auth reads an ini file; ours points its user store at our database."""
    path = settings.data_dir / "basic_auth.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(
        path,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {settings.auth_database_uri}\n"
        f"admin_username = {settings.admin_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without a cache every request pays a ~90 ms password hash. A changed password may keep
        # working on other workers for up to this long.
        "auth_cache_ttl_seconds = 60\n",
    )
    if settings.auth_database_uri.startswith("sqlite:///"):
        # MLflow creates the user store (password hashes) with the umask's mode; SQLite keeps the mode
        # of an existing file and gives its journal files the same one, so create it private first.
        database = Path(settings.auth_database_uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
        database.chmod(0o600)
    return path


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, never readable by others even for an instant."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def server_command(settings: TrackingSettings) -> list[str]:
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", settings.backend_store_uri,
        # Proxy-only S3: clients never get presigned URLs naming an endpoint they cannot reach.
        "--artifacts-destination", to_proxied(settings.artifacts_uri),
        "--serve-artifacts",
        "--host", settings.host,
        "--port", str(settings.port),
        "--workers", str(settings.workers),
        "--allowed-hosts", ",".join(settings.allowed_host_list()),
    ]
    if settings.auth:
        argv += ["--app-name", "basic-auth"]
    return argv


def prepare_stores(settings: TrackingSettings, *, migrate: bool) -> None:
    """Databases reachable, schemas at head (migrated here when ``migrate``), artifact store there."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    wait_for_database(settings.backend_store_uri, settings.db_wait_seconds)
    if settings.auth:
        # The ini makes MLflow's auth module (imported by the auth migration) read our user store.
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(settings))
        wait_for_database(settings.auth_database_uri, settings.db_wait_seconds)
    if migrate:
        schema.migrate_tracking_store(settings.backend_store_uri)
        if settings.auth:
            schema.migrate_auth_store(settings.auth_database_uri, settings.admin_username,
                                      settings.admin_password or "")
    else:
        behind = schema.wait_until_at_head(lambda: schema_states(settings), settings.db_wait_seconds)
        if behind:
            raise DependencyError(
                "; ".join(state.describe() for state in behind)
                + f" after {settings.db_wait_seconds:.0f} s: run the one-shot `python -m tracking migrate` "
                "(compose: the tracking-migrate service; Kubernetes: the tracking-migrate Job), "
                "or set TRACKING_MIGRATE_ON_START=true"
            )
    if settings.uses_s3:
        ensure_bucket(settings)
    else:
        Path(settings.artifacts_uri).mkdir(parents=True, exist_ok=True)


def schema_states(settings: TrackingSettings) -> list[schema.SchemaState]:
    states = [schema.tracking_store_state(settings.backend_store_uri)]
    if settings.auth:
        states.append(schema.auth_store_state(settings.auth_database_uri))
    return states


def prepare(settings: TrackingSettings) -> tuple[list[str], dict[str, str]]:
    """Everything before the server starts; returns the command and environment to exec."""
    prepare_stores(settings, migrate=settings.migrate_on_start)
    env = dict(os.environ)
    # MLflow's background job runner (online scoring, trace archival) is unused here and starts
    # seven processes that compete with the first clients for CPU.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return server_command(settings), env


USAGE = "usage: python -m tracking [serve|migrate]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "serve"
    if command not in ("serve", "migrate") or len(args) > 1:
        print(f"tracking: {USAGE}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=logging.INFO, format="tracking: %(message)s", stream=sys.stderr)
    # Alembic and MLflow log every migration step; one line per phase is enough here.
    for noisy in ("alembic", "mlflow.store.db.utils", "mlflow.store", "mlflow.server.auth"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings()
        log.info("mode %s, store %s, artifacts %s", settings.mode, redact(settings.backend_store_uri),
                 settings.artifacts_uri)
        if command == "migrate":
            prepare_stores(settings, migrate=True)
            log.info("migrate: schemas at head, artifact store ready")
            return 0
        argv_, env = prepare(settings)
    except ConfigError as exc:
        print(f"tracking: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DependencyError as exc:
        print(f"tracking: cannot start: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except migration_errors() as exc:
        # A failed migration or store: one line with no secret and a non-zero exit, in both commands.
        print(f"tracking: migration failed: {exc.__class__.__name__}: {_first_line(exc)}", file=sys.stderr)
        return EXIT_MIGRATION
    log.info("starting mlflow server on %s:%s (%s workers, auth %s)", settings.host, settings.port,
             settings.workers, "on" if settings.auth else "off")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv_[0], argv_, env)
    return 0  # not reached


def migration_errors() -> tuple[type[BaseException], ...]:
    import sqlalchemy as sa
    from alembic.util import CommandError
    from mlflow.exceptions import MlflowException

    return sa.exc.SQLAlchemyError, CommandError, MlflowException


def _first_line(exc: BaseException) -> str:
    return redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "")


def redact_text(text: str) -> str:
    """Mask any password in a database URL inside ``text``."""
    import re

    return re.sub(r"(://[^/\s:@]*:)[^@/\s]+@", r"\1***@", text)
