"""gunicorn entry point: `gunicorn monitor.wsgi:app` (each worker builds its own app after the fork)."""

from monitor.app import create_app
from monitor.logging_setup import configure_logging

configure_logging()
app = create_app()
