"""gunicorn entry point: `gunicorn monitor.wsgi:app` (each worker builds its own app after the fork)."""

import gc

from monitor.app import create_app
from monitor.logging_setup import configure_logging

configure_logging()
app = create_app()
# The app's long-lived objects (MLflow, sklearn, pandas, SQLAlchemy: over a million) move to the
# permanent generation: a full collection no longer walks them all while a push waits.
gc.collect()
gc.freeze()
