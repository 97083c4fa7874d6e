"""The trainer's settings, read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_TRACKING_URI = "http://127.0.0.1:5000"


class TrainerSettings(BaseSettings):
    """Environment variables the trainer reads itself.

    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD are read by MLflow's client directly.
    """

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    tracking_uri: str = Field(LOCAL_TRACKING_URI, validation_alias="MLFLOW_TRACKING_URI")
    config_file: Path | None = Field(None, validation_alias="TRAINER_CONFIG_FILE")
    actor: str | None = Field(None, validation_alias="TRAINER_ACTOR")
    health_timeout: float = Field(3.0, validation_alias="TRAINER_HEALTH_TIMEOUT")
