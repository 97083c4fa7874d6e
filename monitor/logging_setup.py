"""One log format for the CLI and gunicorn workers (secrets are SecretStr and never reach it)."""

from __future__ import annotations

import logging
import os


def configure_logging() -> None:
    level = os.environ.get("MONITOR_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    for noisy in ("urllib3", "botocore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
