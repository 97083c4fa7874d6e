"""Routes of the dashboard: each view reads plain data (``data.py``) and renders one template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory, url_for
from werkzeug.routing import BuildError

from monitor.dashboard import data
from monitor.models import MAX_ROW_ID

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "static" / "vendor"
EXTENSION = "driftline_dashboard"

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)


def _monitor() -> Any:
    return current_app.extensions["driftline"]


def _registry_view() -> data.RegistryView:
    view = current_app.extensions.get(EXTENSION)
    if view is None:
        monitor = _monitor()
        view = data.RegistryView(monitor.registry.client, monitor.settings.mlflow_public_url)
        current_app.extensions[EXTENSION] = view
    return view


@bp.get("/dashboard/vendor/<path:filename>")
def vendor(filename: str) -> Response:
    """Third-party files vendored in monitor/static/vendor (Chart.js): nothing comes from a CDN."""
    return send_from_directory(VENDOR, filename, max_age=3600)


@bp.get("/")
def overview() -> str:
    monitor = _monitor()
    with monitor.sessions() as session:
        page = data.overview(session, monitor, _registry_view())
        return render_template("dashboard/overview.html", **page)


@bp.get("/models/<name>")
def model(name: str) -> str:
    monitor = _monitor()
    with monitor.sessions() as session:
        page = data.model_page(session, monitor, _registry_view(), name)
        if page is None:
            abort(404, f"no model named {name!r}: it has no evaluations and the registry does not know it")
        return render_template("dashboard/model.html", **page)


@bp.get("/evaluations/<int:evaluation_id>")
def evaluation(evaluation_id: int) -> str:
    monitor = _monitor()
    with monitor.sessions() as session:
        page = data.evaluation_page(session, evaluation_id) if evaluation_id <= MAX_ROW_ID else None
        if page is None:
            abort(404, f"evaluation {evaluation_id} not found")
        return render_template("dashboard/evaluation.html", **page)


@bp.get("/alerts")
def alerts() -> str:
    monitor = _monitor()
    with monitor.sessions() as session:
        rows = data.alert_rows(session)
        silences = data.silence_rows(session)
        return render_template(
            "dashboard/alerts.html",
            firing=[a for a in rows if a["state"] in ("firing", "silenced", "pending")],
            resolved=[a for a in rows if a["state"] == "resolved"],
            silences=silences,
            receivers=data.receivers(current_app.extensions),
            alerts_installed=data.alerts_available(),
            models=sorted({a["model"] for a in rows if a["model"]}),
            silences_url=_silences_url(),
        )


def _silences_url() -> str:
    try:
        return url_for("alerts.create_silence")
    except BuildError:  # the alerts blueprint is not registered: the page still shows, writes fail clearly
        return "/api/silences"


@bp.app_template_filter("dl_time")
def when(value: Any) -> str:
    """A timestamp as UTC text for tables (the <time> element carries the ISO value)."""
    if value is None:
        return "—"
    from monitor.delivery_metrics import parse_time

    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else str(value)


@bp.app_template_filter("dl_num")
def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != 0 and (abs(number) < 1e-3 or abs(number) >= 1e5):
        return f"{number:.2e}"
    return f"{number:.{digits}g}"
