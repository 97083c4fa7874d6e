"""The dashboard: server-rendered pages over the monitor's evaluations, alerts and the MLflow registry.

Blueprint ``bp`` (registered by the app factory when importable). Pages: ``/`` overview, ``/models/<name>``,
``/evaluations/<id>``, ``/alerts``. Charts use the vendored Chart.js (``monitor/static/vendor``) served by
this blueprint; chart data reaches the page as JSON (``tojson`` in ``<script type="application/json">``).
"""

from monitor.dashboard.views import bp

__all__ = ["bp"]
