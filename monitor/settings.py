"""The monitor's settings: one object read from the environment (and an optional YAML file), validated once.

Environment names are the contract with compose and local mode (docs/architecture.md). Secrets are
``SecretStr`` so they never end up in logs or reprs. ``load_settings`` raises ``ConfigError`` with one
line naming the variable; the CLI turns that into exit status 2.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_TOKEN_LENGTH = 16
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "password", "admin", "secret", "token", "default-token"}
SOURCES = ("simulated", "s3", "push")
PROMOTION_POLICIES = ("manual", "notify", "auto")
# The simulated demo world (local mode; docs/promotion.md "The demo's timeline"): two regimes that
# switch, each longer than the retraining cool-down (MONITOR_RETRAIN_COOLDOWN_SECONDS, 1 h = 180 slots
# at the default 20 s), so every switch closes the loop again. The cycle starts at the stack's first
# simulated round (monitor/sources/simulated.py), so `make up` always opens with it:
#   slots 0-7    the old world: clean, a data-drift episode (2 batches), clean again;
#   slots 8-217  concept drift (y = x0 + 10) persists: alert, retraining, challenger, promotion, resolved;
#   slots 218-419 the old world returns: the new champion is wrong now, and the loop closes back.
DEMO_PROLOGUE = ("clean",) * 3 + ("data_drift",) * 2 + ("clean",) * 3
REGIME_SLOTS = 210  # 70 min at 20 s: the cool-down (60 min) plus the ~15 slots a loop takes
DEFAULT_CYCLE = (DEMO_PROLOGUE + ("concept_drift",) * REGIME_SLOTS
                 + ("clean",) * (REGIME_SLOTS - len(DEMO_PROLOGUE)))


class ConfigError(Exception):
    """A setting is wrong; the message names the variable (or config key) and what to do."""


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    mode: Literal["local", "production"] = Field("local", validation_alias="DRIFTLINE_MODE")
    data_dir: Path = Field(Path(".driftline"), validation_alias="DRIFTLINE_DATA_DIR")
    database_url_raw: SecretStr | None = Field(None, validation_alias="MONITOR_DATABASE_URL")
    host: str = Field("127.0.0.1", validation_alias="MONITOR_HOST")
    port: int = Field(8000, ge=1, le=65535, validation_alias="MONITOR_PORT")
    workers: int = Field(2, ge=1, le=64, validation_alias="MONITOR_WORKERS")
    # gunicorn gthread: threads per worker (a push waits on the database and MLflow; /healthz must
    # not queue behind pushes).
    threads: int = Field(4, ge=1, le=64, validation_alias="MONITOR_THREADS")
    api_token: SecretStr | None = Field(None, validation_alias="MONITOR_API_TOKEN")
    # Who logs the MLflow runs of the outbox (monitor/monitoring_runs.py): ``process``, one side
    # process per instance started by the gunicorn master (the request workers never log); ``thread``,
    # a background thread in every process that evaluates (apps built in process, tests, one-shots).
    run_logger: Literal["process", "thread"] = Field("process", validation_alias="MONITOR_RUN_LOGGER")
    run_logger_threads: int = Field(2, ge=1, le=32, validation_alias="MONITOR_RUN_LOGGER_THREADS")
    run_logger_poll_seconds: float = Field(0.5, gt=0, le=60,
                                           validation_alias="MONITOR_RUN_LOGGER_POLL_SECONDS")
    # Load every version the monitor will be asked about (champions, configured models) in each
    # worker as it starts, in the background, so no request pays a model load (gunicorn post_fork).
    preload_models: bool = Field(True, validation_alias="MONITOR_PRELOAD_MODELS")
    config_file: Path | None = Field(None, validation_alias="MONITOR_CONFIG_FILE")
    public_url: str = Field("http://localhost:8000", validation_alias="MONITOR_PUBLIC_URL")
    mlflow_public_url: str = Field("http://localhost:5000", validation_alias="MLFLOW_PUBLIC_URL")
    tracking_uri: str = Field("http://127.0.0.1:5000", validation_alias="MLFLOW_TRACKING_URI")
    tracking_username: str | None = Field(None, validation_alias="MLFLOW_TRACKING_USERNAME")
    tracking_password: SecretStr | None = Field(None, validation_alias="MLFLOW_TRACKING_PASSWORD")
    scheduler: bool = Field(True, validation_alias="MONITOR_SCHEDULER")
    # Unset: 20 s in local mode (the demo shows a whole drift cycle within minutes), 300 s otherwise.
    interval_seconds: float | None = Field(None, gt=0, le=86400, validation_alias="MONITOR_INTERVAL_SECONDS")
    source: Literal["simulated", "s3", "push"] | None = Field(None, validation_alias="MONITOR_SOURCE")
    champion_alias: str = Field("champion", min_length=1, validation_alias="MONITOR_CHAMPION_ALIAS")
    max_batch_bytes: int = Field(10 * 1024 * 1024, ge=1024, validation_alias="MONITOR_MAX_BATCH_BYTES")
    # Pushed batches are refused (413) past these, checked before rows are decoded (sources/push.py).
    # A pushed batch may use the champion alias as resolved this long ago (0: ask the registry each time).
    push_alias_max_age_seconds: float = Field(5.0, ge=0, le=300,
                                              validation_alias="MONITOR_PUSH_ALIAS_MAX_AGE_SECONDS")
    max_batch_rows: int = Field(2_000_000, ge=1, validation_alias="MONITOR_MAX_BATCH_ROWS")
    max_batch_columns: int = Field(1_000, ge=1, validation_alias="MONITOR_MAX_BATCH_COLUMNS")
    max_batch_cells: int = Field(25_000_000, ge=1, validation_alias="MONITOR_MAX_BATCH_CELLS")
    # Parquet: decoded size bound from the footer (string columns can decode far beyond the file).
    max_batch_decoded_bytes: int = Field(512 * 1024 * 1024, ge=1024,
                                         validation_alias="MONITOR_MAX_BATCH_DECODED_BYTES")
    # Added by the monitor (not in the original table): retry cap, simulated batch size, default inbox.
    retry_max_seconds: float = Field(300.0, gt=0, validation_alias="MONITOR_RETRY_MAX_SECONDS")
    simulated_rows: int = Field(100, ge=1, le=10_000_000, validation_alias="MONITOR_SIMULATED_ROWS")
    # Team models: the first N labelled rows of a version without any reference become its reference.
    reference_window_rows: int = Field(200, ge=0, le=10_000_000,
                                       validation_alias="MONITOR_REFERENCE_WINDOW_ROWS")
    # The drift engine's joint test of small batches (docs/drift.md). Unset: DriftConfig's defaults
    # (energy_mean, 1,000 pooled rows, 999 relabellings, seed 0); the YAML file's drift settings,
    # global or per model, override these. The cost grows with the square of the pooled rows.
    joint_test: Literal["energy_mean", "energy", "none"] | None = Field(
        None, validation_alias="MONITOR_JOINT_TEST")
    joint_max_rows: int | None = Field(None, ge=0, le=5_000, validation_alias="MONITOR_JOINT_MAX_ROWS")
    permutations: int | None = Field(None, ge=1, le=99_999, validation_alias="MONITOR_PERMUTATIONS")
    permutation_seed: int | None = Field(None, ge=0, le=2**32 - 1,
                                         validation_alias="MONITOR_PERMUTATION_SEED")
    s3_inbox: str | None = Field(None, validation_alias="MONITOR_S3_INBOX")
    s3_endpoint_url: str | None = Field(None, validation_alias="MLFLOW_S3_ENDPOINT_URL")
    aws_access_key_id: str | None = Field(None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, validation_alias="AWS_SECRET_ACCESS_KEY")
    # For the alerts engineer (monitor/alerts): receivers are secrets, the rest are policy.
    alert_webhook_url: SecretStr | None = Field(None, validation_alias="ALERT_WEBHOOK_URL")
    alert_slack_webhook_url: SecretStr | None = Field(None, validation_alias="ALERT_SLACK_WEBHOOK_URL")
    alertmanager_url: SecretStr | None = Field(None, validation_alias="ALERTMANAGER_URL")
    alert_repeat_interval_seconds: float = Field(14400.0, gt=0,
                                                 validation_alias="ALERT_REPEAT_INTERVAL_SECONDS")
    alert_resolve_after: int = Field(2, ge=1, validation_alias="ALERT_RESOLVE_AFTER")
    alert_fire_after: int = Field(1, ge=1, validation_alias="ALERT_FIRE_AFTER")
    alert_failure_threshold: int = Field(3, ge=1, validation_alias="ALERT_FAILURE_THRESHOLD")
    alert_delivery_interval_seconds: float = Field(5.0, gt=0,
                                                   validation_alias="ALERT_DELIVERY_INTERVAL_SECONDS")
    # Operations (issue 14): outage alerts, history retention, shutdown, read access.
    dependency_down_after_seconds: float = Field(120.0, gt=0,
                                                 validation_alias="MONITOR_DEPENDENCY_DOWN_AFTER_SECONDS")
    dependency_check_seconds: float = Field(15.0, gt=0, le=3600,
                                            validation_alias="MONITOR_DEPENDENCY_CHECK_SECONDS")
    alert_history_retention_days: float = Field(90.0, gt=0,
                                                validation_alias="ALERT_HISTORY_RETENTION_DAYS")
    graceful_timeout_seconds: float = Field(20.0, ge=2, le=600,
                                            validation_alias="MONITOR_GRACEFUL_TIMEOUT_SECONDS")
    read_token: SecretStr | None = Field(None, validation_alias="MONITOR_READ_TOKEN")
    metrics_token: SecretStr | None = Field(None, validation_alias="MONITOR_METRICS_TOKEN")
    read_auth_cache_seconds: float = Field(60.0, ge=0, le=3600,
                                           validation_alias="MONITOR_READ_AUTH_CACHE_SECONDS")
    # Scale out (issue 18): replicas share a round's work units through PostgreSQL claims.
    claim_lease_seconds: float = Field(60.0, ge=1, le=86400, validation_alias="MONITOR_CLAIM_LEASE_SECONDS")
    claim_batch_size: int = Field(5, ge=1, le=1000, validation_alias="MONITOR_CLAIM_BATCH_SIZE")
    # Loaded model versions kept per process (profiles: twice as many); a warm round needs them all.
    model_cache_size: int = Field(1024, ge=1, le=100_000, validation_alias="MONITOR_MODEL_CACHE_SIZE")

    # The closed loop (issue 15, docs/promotion.md): challengers, promotion, rollback, retraining.
    challenger_aliases: str = Field("challenger.*", min_length=1,
                                    validation_alias="MONITOR_CHALLENGER_ALIASES")
    promotion_policy: Literal["manual", "notify", "auto"] = Field(
        "notify", validation_alias="MONITOR_PROMOTION_POLICY")
    promotion_alpha: float = Field(0.05, gt=0, lt=1, validation_alias="MONITOR_PROMOTION_ALPHA")
    promotion_min_batches: int = Field(3, ge=1, le=10_000, validation_alias="MONITOR_PROMOTION_MIN_BATCHES")
    rollback_batches: int = Field(20, ge=0, le=100_000, validation_alias="MONITOR_ROLLBACK_BATCHES")
    retrain: Literal["off", "subprocess", "webhook"] | None = Field(None, validation_alias="MONITOR_RETRAIN")
    retrain_webhook_url: SecretStr | None = Field(None, validation_alias="MONITOR_RETRAIN_WEBHOOK_URL")
    retrain_batches: int = Field(10, ge=1, le=1000, validation_alias="MONITOR_RETRAIN_BATCHES")
    retrain_max_rows: int = Field(100_000, ge=1, le=100_000_000, validation_alias="MONITOR_RETRAIN_MAX_ROWS")
    retrain_with_reference: bool = Field(False, validation_alias="MONITOR_RETRAIN_WITH_REFERENCE")
    retrain_cooldown_seconds: float = Field(3600.0, ge=0, validation_alias="MONITOR_RETRAIN_COOLDOWN_SECONDS")
    retrain_timeout_seconds: float = Field(900.0, gt=0, validation_alias="MONITOR_RETRAIN_TIMEOUT_SECONDS")

    @field_validator("database_url_raw", "api_token", "config_file", "tracking_username", "tracking_password",
                     "source", "s3_inbox", "interval_seconds", "s3_endpoint_url", "aws_access_key_id",
                     "aws_secret_access_key",
                     "alert_webhook_url", "alert_slack_webhook_url", "alertmanager_url", "read_token",
                     "metrics_token", "retrain", "retrain_webhook_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def database_url(self) -> str:
        if self.database_url_raw is not None:
            return self.database_url_raw.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'monitor.db').resolve()}"

    @property
    def interval(self) -> float:
        return self.interval_seconds or (20.0 if self.mode == "local" else 300.0)

    @property
    def default_source(self) -> str:
        # Simulated data is a demo: on by default only in local mode.
        return self.source or ("simulated" if self.mode == "local" else "push")

    @property
    def retrain_mode(self) -> str:
        # Local mode and compose run the trainer as a subprocess of the monitor unless told otherwise;
        # a webhook URL alone means an outside orchestrator takes the requests.
        if self.retrain is not None:
            return self.retrain
        return "webhook" if self.retrain_webhook_url is not None else "subprocess"

    def drift_defaults(self) -> dict[str, Any]:
        """DriftConfig fields set through the environment (the YAML file's drift settings win)."""
        names = ("joint_test", "joint_max_rows", "permutations", "permutation_seed")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token is not None else None

    def check(self) -> None:
        """Refuse settings that cannot work, or that are unsafe outside local mode."""
        if self.mode == "production":
            token = self.token() or ""
            if len(token) < MIN_TOKEN_LENGTH or token.lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(f"MONITOR_API_TOKEN is missing or weak: set a random value of at least "
                                  f"{MIN_TOKEN_LENGTH} characters (make up writes one to .env)")
            if self.database_url_raw is None or self.database_url.startswith("sqlite"):
                raise ConfigError("MONITOR_DATABASE_URL is not a PostgreSQL URL: production mode needs "
                                  "postgresql+psycopg2://USER:PASS@HOST:5432/monitor (SQLite is local only)")
        import re

        try:
            re.compile(self.challenger_aliases)
        except re.error as exc:
            raise ConfigError(f"MONITOR_CHALLENGER_ALIASES is not a regular expression ({exc}): "
                              "e.g. challenger.*") from None
        if self.retrain == "webhook" and self.retrain_webhook_url is None:
            raise ConfigError("MONITOR_RETRAIN=webhook needs MONITOR_RETRAIN_WEBHOOK_URL: set it or use "
                              "MONITOR_RETRAIN=subprocess")
        if self.config_file is not None and not self.config_file.is_file():
            raise ConfigError(f"MONITOR_CONFIG_FILE={self.config_file} does not exist: "
                              "fix the path or unset it")


# --- the optional YAML file -------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    """Per-model overrides from the YAML file; anything unset falls back to the environment."""

    name: str
    source: str | None = None
    s3_inbox: str | None = None  # s3://bucket/prefix
    scenarios: tuple[str, ...] | None = None
    rows: int | None = None
    drift: dict[str, Any] = field(default_factory=dict)  # DriftConfig fields (tests, thresholds, alpha…)
    target: str | None = None  # target column when neither the dataset nor a version tag says
    task: str | None = None  # regression | classification (overrides detection)
    monitor: bool = True  # false: not watched even with the champion alias
    promotion: str | None = None  # manual | notify | auto (else the model's tag, else the setting)
    retrain: bool = True  # false: drift never requests a retraining of this model


@dataclass(frozen=True)
class MonitorConfig:
    """The YAML file: which models, how often, from where, and which drift tests.

    Example::

        discover: true            # also monitor every model with the champion alias
        schedule: {interval_seconds: 60}   # or {cron: "*/5 * * * *"}
        drift: {alpha: 0.05, correction: holm}
        models:
          - name: lasso_regression_model
            source: s3
            s3_inbox: s3://inbox/lasso/
            drift: {numeric_tests: [ks], thresholds: {ks: 0.01}}
            promotion: auto       # manual | notify | auto (docs/promotion.md)
            retrain: false        # never request a retraining of this model
    """

    discover: bool = True
    interval_seconds: float | None = None
    cron: str | None = None
    drift: dict[str, Any] = field(default_factory=dict)
    scenarios: tuple[str, ...] = DEFAULT_CYCLE
    models: tuple[ModelConfig, ...] = ()

    @functools.cached_property
    def _by_name(self) -> dict[str, ModelConfig]:
        index: dict[str, ModelConfig] = {}
        for model in self.models:
            index.setdefault(model.name, model)  # the first entry of a name wins, as before
        return index

    def model(self, name: str) -> ModelConfig:
        # A dict, not a scan: a round asks this several times per model (1,000 models: 5 million
        # comparisons per round with a scan).
        found = self._by_name.get(name)
        return found if found is not None else ModelConfig(name=name)

    def drift_settings(self, name: str) -> dict[str, Any]:
        return {**self.drift, **self.model(name).drift}


def drift_config_hash(drift: dict[str, Any]) -> str:
    """Stable key for a drift configuration (reference profiles are cached per config)."""
    return hashlib.sha256(json.dumps(drift, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_config_file(path: Path | None, drift_defaults: dict[str, Any] | None = None) -> MonitorConfig:
    """The YAML file (or the defaults when there is none); ``drift_defaults`` (from the environment,
    ``MonitorSettings.drift_defaults``) sit under the file's drift settings."""
    defaults = dict(drift_defaults or {})
    if path is None:
        config = MonitorConfig(drift=defaults)
        _check_drift(config)
        return config
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"MONITOR_CONFIG_FILE={path} cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"MONITOR_CONFIG_FILE={path} must hold a mapping "
                          "(discover, schedule, drift, models)")
    unknown = set(data) - {"discover", "schedule", "drift", "scenarios", "models"}
    if unknown:
        raise ConfigError(f"MONITOR_CONFIG_FILE has unknown keys {sorted(unknown)}: "
                          "allowed are discover, schedule, drift, scenarios, models")
    schedule = data.get("schedule") or {}
    models = []
    for item in data.get("models") or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError("MONITOR_CONFIG_FILE: every entry under models needs a name")
        source = item.get("source")
        if item.get("task") not in (None, "regression", "classification"):
            raise ConfigError(f"MONITOR_CONFIG_FILE: model {item['name']} has task {item['task']!r}; "
                              "use regression or classification")
        if item.get("promotion") not in (None, *PROMOTION_POLICIES):
            raise ConfigError(f"MONITOR_CONFIG_FILE: model {item['name']} has promotion "
                              f"{item['promotion']!r}; use one of {', '.join(PROMOTION_POLICIES)}")
        if source is not None and source not in SOURCES:
            raise ConfigError(f"MONITOR_CONFIG_FILE: model {item['name']} has source {source!r}; "
                              f"use one of {', '.join(SOURCES)}")
        models.append(ModelConfig(
            name=str(item["name"]), source=source, s3_inbox=item.get("s3_inbox"),
            scenarios=tuple(item["scenarios"]) if item.get("scenarios") else None,
            rows=item.get("rows"), drift=dict(item.get("drift") or {}),
            target=item.get("target"), task=item.get("task"), monitor=bool(item.get("monitor", True)),
            promotion=item.get("promotion"), retrain=bool(item.get("retrain", True)),
        ))
    config = MonitorConfig(
        discover=bool(data.get("discover", True)),
        interval_seconds=schedule.get("interval_seconds"), cron=schedule.get("cron"),
        drift={**defaults, **dict(data.get("drift") or {})},
        scenarios=tuple(data.get("scenarios") or DEFAULT_CYCLE), models=tuple(models),
    )
    _check_drift(config)
    return config


def _check_drift(config: MonitorConfig) -> None:
    """Build every drift configuration once so a typo in a test name fails at start-up, not at 3 a.m."""
    try:
        from monitor.drift import DriftConfig
    except ImportError:  # drift engine not installed yet: checked at first evaluation instead
        return
    for name in [None, *[m.name for m in config.models]]:
        drift = config.drift if name is None else config.drift_settings(name)
        try:
            DriftConfig.from_dict(drift)
        except (TypeError, ValueError) as exc:
            where = "drift" if name is None else f"models[{name}].drift"
            raise ConfigError(f"MONITOR_CONFIG_FILE: {where} is invalid: {exc}") from None


def load_settings(environ: dict[str, str] | None = None) -> MonitorSettings:
    env = dict(os.environ if environ is None else environ)
    try:
        # model_validate, not the constructor: only `env` counts, never the process environment behind it.
        # An empty variable means unset: compose passes every name, empty when .env leaves it blank.
        settings = MonitorSettings.model_validate(
            {k: v for k, v in env.items() if k in _ALIASES and v.strip()})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = first["loc"][0] if first["loc"] else "settings"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None
    settings.check()
    return settings


_ALIASES = {str(f.validation_alias) for f in MonitorSettings.model_fields.values()}
