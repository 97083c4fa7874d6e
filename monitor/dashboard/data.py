"""What the pages show, as plain dicts: read from the monitor's tables and the MLflow registry.

Nothing here renders HTML. Registry reads degrade to an ``error`` string (the pages still show what
the monitor's own database knows); model-version facts never change, so they are cached per process.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from monitor import delivery_metrics
from monitor.db import utcnow
from monitor.models import Evaluation, StoredProfile

HISTORY_TAG = "driftline.alias_history"
MAX_POINTS = 200
STATUS_ORDER = ("failing", "degraded", "drifting", "silenced", "no reference", "collecting reference",
                "healthy", "no data")
TREND_POINTS = 30  # evaluations in an overview card's trend chart
ALERT_STATUS = {
    "monitor_failure": "failing",
    "concept_drift": "degraded",
    "performance_degradation": "degraded",
    "estimated_performance_degradation": "degraded",
    "data_drift": "drifting",
    "data_quality": "drifting",
}
PERFORMANCE_RATIO = 1.5


# --- the registry (MLflow) ----------------------------------------------------------------------------


class RegistryView:
    """Reads of the MLflow registry for the pages; version facts cached (a version never changes)."""

    def __init__(self, client: Any, public_url: str) -> None:
        self.client = client
        self.public_url = public_url.rstrip("/")
        self._versions: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def model(self, name: str) -> dict[str, Any]:
        """Aliases and alias history of a registered model; ``error`` says why they are missing."""
        try:
            found = self.client.get_registered_model(name)
        except Exception as exc:  # noqa: BLE001 - any registry failure is shown, not raised
            return {"aliases": {}, "history": [], "error": _short(exc)}
        history = delivery_metrics_history(found.tags or {})
        return {
            "aliases": {k: str(v) for k, v in (found.aliases or {}).items()},
            "history": history,
            "error": None,
        }

    def version(self, name: str, version: str) -> dict[str, Any]:
        key = (name, str(version))
        with self._lock:
            if key in self._versions:
                return self._versions[key]
        info: dict[str, Any] = {"run_id": None, "experiment_id": None, "run_start": None, "tags": {}}
        try:
            mv = self.client.get_model_version(name, str(version))
            info["run_id"], info["tags"] = mv.run_id, dict(mv.tags or {})
            if mv.run_id:
                run = self.client.get_run(mv.run_id)
                info["experiment_id"] = run.info.experiment_id
                if run.info.start_time:
                    info["run_start"] = datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC)
        except Exception as exc:  # noqa: BLE001 - not cached: the next page view tries again
            info["error"] = _short(exc)
            return info
        with self._lock:
            self._versions[key] = info
        return info

    def version_url(self, name: str, version: str) -> str:
        return f"{self.public_url}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"

    def run_url(self, run_id: str | None, experiment_id: str | None) -> str | None:
        if not run_id:
            return None
        if experiment_id:
            return f"{self.public_url}/#/experiments/{quote(str(experiment_id))}/runs/{quote(run_id)}"
        return f"{self.public_url}/#/runs/{quote(run_id)}"


def delivery_metrics_history(tags: dict[str, str]) -> list[dict[str, Any]]:
    import json

    raw = tags.get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except (TypeError, ValueError):
        return []
    return [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []


# --- alerts -------------------------------------------------------------------------------------------


def alerts_available() -> bool:
    try:
        import monitor.alerts.models  # noqa: F401
    except ImportError:
        return False
    return True


def alert_rows(session: Any, model: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Alerts (newest first) with their effective state (silenced when a silence matches now)."""
    if not alerts_available():
        return []
    from monitor.alerts import silences as silence_rules
    from monitor.alerts.engine import active_silences
    from monitor.alerts.models import Alert, Delivery, aware

    now = utcnow()
    stmt = (
        sa.select(Alert).where(Alert.state != "inactive").order_by(Alert.updated_at.desc(), Alert.id.desc())
    )
    if model is not None:
        stmt = stmt.where(Alert.model_name == model)
    alerts = session.scalars(stmt.limit(limit)).all()
    silences = active_silences(session, now)
    deliveries: dict[int, dict[str, dict[str, Any]]] = {a.id: {} for a in alerts}
    if alerts:
        rows = session.scalars(
            sa.select(Delivery).where(Delivery.alert_id.in_(list(deliveries))).order_by(Delivery.id.desc())
        ).all()
        for row in rows:
            per_receiver = deliveries[row.alert_id]
            if row.receiver not in per_receiver:  # newest notification per receiver
                per_receiver[row.receiver] = {
                    "receiver": row.receiver,
                    "kind": row.kind,
                    "status": row.status,
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                    "sent_at": aware(row.sent_at),
                    "next_attempt_at": aware(row.next_attempt_at) if row.status == "pending" else None,
                }
    out = []
    for alert in alerts:
        silenced = silence_rules.silenced_by(silences, alert.labels, now) if alert.state == "firing" else []
        out.append(
            {
                "id": alert.id,
                "fingerprint": alert.fingerprint,
                "name": alert.alertname,
                "model": alert.model_name,
                "version": alert.model_version,
                "severity": alert.severity,
                "state": "silenced" if silenced else alert.state,
                "silenced_by": silenced,
                "summary": (alert.annotations or {}).get("summary") or "",
                "starts_at": aware(alert.starts_at),
                "ends_at": aware(alert.ends_at) if alert.state == "resolved" else None,
                # The evaluation that made it fire, which is what "why" asks for (alerts from before
                # migration 0005 fall back to the last bad evaluation).
                "evaluation_id": alert.fired_evaluation_id
                or _int_or_none((alert.annotations or {}).get("evaluation_id"))
                or alert.last_evaluation_id,
                "dependency": (alert.labels or {}).get("dependency"),
                "episodes": alert.episodes,
                "deliveries": sorted(deliveries[alert.id].values(), key=lambda d: d["receiver"]),
            }
        )
    return out


def silence_rows(session: Any, limit: int = 100) -> list[dict[str, Any]]:
    if not alerts_available():
        return []
    from monitor.alerts import silences as silence_rules
    from monitor.alerts.models import Silence, aware

    now = utcnow()
    rows = session.scalars(sa.select(Silence).order_by(Silence.created_at.desc()).limit(limit)).all()
    out = []
    for row in rows:
        row.starts_at, row.ends_at = aware(row.starts_at), aware(row.ends_at)
        out.append(
            {
                "id": row.id,
                "matchers": row.matchers,
                "starts_at": row.starts_at,
                "ends_at": row.ends_at,
                "created_by": row.created_by,
                "comment": row.comment,
                "state": silence_rules.status(row, now),
            }
        )
    return out


def receivers(app_extensions: dict[str, Any]) -> list[str]:
    runtime = app_extensions.get("driftline_alerts")
    return [r.name for r in runtime.config.receivers] if runtime is not None else []


# --- status -------------------------------------------------------------------------------------------


def model_status(latest: Evaluation | None, alerts: list[dict[str, Any]]) -> str:
    """healthy | drifting | degraded | failing | silenced | no data — firing alerts first, then the
    latest evaluation's verdict."""
    firing = [a for a in alerts if a["state"] == "firing"]
    if firing:
        return min((ALERT_STATUS.get(a["name"], "drifting") for a in firing), key=STATUS_ORDER.index)
    if any(a["state"] == "silenced" for a in alerts):
        return "silenced"
    return evaluation_status(latest)


def evaluation_status(ev: Evaluation | None) -> str:
    if ev is None:
        return "no data"
    if ev.status == "collecting":
        return "collecting reference"
    if ev.status == "no_reference":
        return "no reference"
    if ev.status != "ok":
        return "failing"
    if (
        ev.concept_drift
        or _ratio(error_rate(ev.accuracy), error_rate(ev.baseline_accuracy)) >= PERFORMANCE_RATIO
        or _ratio(ev.mse, ev.baseline_mse) >= PERFORMANCE_RATIO
        or _ratio(ev.mae, ev.baseline_mae) >= PERFORMANCE_RATIO
    ):
        return "degraded"
    if ev.data_drift or ev.prediction_drift:
        return "drifting"
    return "healthy"


def error_rate(accuracy: float | None) -> float | None:
    return None if accuracy is None else 1.0 - accuracy


def error_ratio(ev: Evaluation) -> float | None:
    """Batch error over baseline error: MSE for regression, error rate (1 - accuracy) for classifiers."""
    if ev.accuracy is not None:
        value, baseline = error_rate(ev.accuracy), error_rate(ev.baseline_accuracy)
    else:
        value, baseline = ev.mse, ev.baseline_mse
    if value is None or not baseline:
        return None
    return value / baseline


def collecting_text(ev: Evaluation | None) -> str | None:
    """"collecting reference, k of N rows" while a version's reference window fills."""
    if ev is None or ev.status != "collecting":
        return None
    return ((ev.report or {}).get("collecting") or {}).get("message")


def trend(session: Any, name: str) -> dict[str, Any]:
    """The card's small chart: error against the baseline and the share of drifted features, over the
    model's last ``TREND_POINTS`` ok evaluations (oldest first)."""
    rows = session.scalars(
        sa.select(Evaluation).options(selectinload(Evaluation.features))
        .where(Evaluation.model_name == name, Evaluation.status == "ok")
        .order_by(Evaluation.id.desc()).limit(TREND_POINTS)
    ).all()[::-1]
    label = "error rate / baseline" if any(r.accuracy is not None for r in rows) else "MSE / baseline"
    return {
        "labels": [_label(r.finished_at) for r in rows],
        "ids": [r.id for r in rows],
        "datasets": [
            {"label": label, "data": [error_ratio(r) for r in rows]},
            {"label": "drifted share", "data": [
                (len(r.drifted_features or []) / len({f.feature for f in r.features})) if r.features else None
                for r in rows]},
        ],
        "compact": True,
    }


def _ratio(value: float | None, baseline: float | None) -> float:
    if value is None or not baseline:
        return 0.0
    return value / baseline


# --- models -------------------------------------------------------------------------------------------


def model_names(session: Any, registry: Any) -> tuple[list[str], str | None]:
    names = set(session.scalars(sa.select(Evaluation.model_name).distinct()).all())
    error = None
    try:
        names |= set(registry.champions())
    except Exception as exc:  # noqa: BLE001 - the registry may be down; the DB still knows some models
        error = _short(exc)
    return sorted(names), error


def latest_evaluations(session: Any) -> dict[str, Evaluation]:
    latest_ids = sa.select(sa.func.max(Evaluation.id)).group_by(Evaluation.model_name)
    return {
        e.model_name: e for e in session.scalars(sa.select(Evaluation).where(Evaluation.id.in_(latest_ids)))
    }


def episode_spans(session: Any, alerts: list[dict[str, Any]],
                  model: str | None = None) -> list[dict[str, Any]]:
    """Every firing → resolved episode (``alert_episodes``) as delivery-metrics alert spans, so an
    alert that fired again still counts its earlier episodes; alerts that fired before the history
    existed count once, from their current row."""
    if not alerts_available():
        return []
    from monitor.alerts.models import AlertEpisode, aware

    stmt = sa.select(AlertEpisode).order_by(AlertEpisode.starts_at)
    if model is not None:
        stmt = stmt.where(AlertEpisode.model_name == model)
    rows = session.scalars(stmt).all()
    spans = [{"name": r.alertname, "model": r.model_name, "version": r.model_version,
              "starts_at": aware(r.starts_at), "ends_at": aware(r.ends_at)} for r in rows]
    with_history = {r.fingerprint for r in rows}
    spans += [{"name": a["name"], "model": a["model"], "version": a["version"], "starts_at": a["starts_at"],
               "ends_at": a["ends_at"]}
              for a in alerts if a["fingerprint"] not in with_history and a["state"] != "pending"
              and (model is None or a["model"] == model)]
    return spans


def metrics_for(
    name: str,
    history: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    registry_view: RegistryView,
    now: datetime,
) -> dict[str, Any]:
    """Delivery metrics of one model, with run start times for its promoted versions. ``alerts`` are
    alert spans (``episode_spans``): one per episode."""
    promoted = {str(e.get("version")) for e in history if e.get("alias") == delivery_metrics.CHAMPION}
    run_starts = {v: registry_view.version(name, v).get("run_start") for v in promoted}
    result = delivery_metrics.delivery_metrics(history, alerts, now=now, run_starts=run_starts, model=name)
    return {
        "raw": result,
        "deploys_per_week": f"{result.deployment_frequency_per_week:.2f}",
        "changes_in_window": result.changes_in_window,
        "window_days": result.window_days,
        "lead_time": delivery_metrics.humanize(result.lead_time_median),
        "change_failure_rate": "—"
        if result.change_failure_rate is None
        else f"{result.change_failure_rate:.0%}",
        "failed_promotions": result.failed_promotions,
        "promotions_evaluated": result.promotions_evaluated,
        "time_to_restore": delivery_metrics.humanize(result.time_to_restore_median),
        "open_alerts": result.open_alerts,
        "rollbacks": result.rollbacks,
    }


def overview(session: Any, monitor: Any, registry_view: RegistryView) -> dict[str, Any]:
    names, registry_error = model_names(session, monitor.registry)
    latest = latest_evaluations(session)
    all_alerts = alert_rows(session)
    all_spans = episode_spans(session, all_alerts)
    now = utcnow()
    champion_alias = monitor.settings.champion_alias
    models = []
    for name in names:
        alerts = [a for a in all_alerts if a["model"] == name]
        reg = registry_view.model(name)
        last = latest.get(name)
        champion = reg["aliases"].get(champion_alias) or (last.model_version if last is not None else None)
        version_info = registry_view.version(name, champion) if champion else {}
        models.append(
            {
                "name": name,
                "status": model_status(last, alerts),
                "champion": champion,
                "champion_url": registry_view.version_url(name, champion) if champion else None,
                "run_url": registry_view.run_url(
                    version_info.get("run_id"), version_info.get("experiment_id")
                ),
                "latest": last,
                "registry_error": reg["error"],
                "open_alerts": [a for a in alerts if a["state"] in ("firing", "silenced")],
                "metrics": metrics_for(name, reg["history"], [a for a in all_spans if a["model"] == name],
                                       registry_view, now),
                "collecting": collecting_text(last),
                "trend": trend(session, name),
            }
        )
    models.sort(key=lambda m: (STATUS_ORDER.index(m["status"]), m["name"]))
    counts = {s: sum(1 for m in models if m["status"] == s) for s in STATUS_ORDER}
    outages = [a for a in all_alerts if a.get("dependency") and a["state"] in ("firing", "silenced")]
    return {"models": models, "counts": counts, "registry_error": registry_error, "now": now,
            "outages": outages}


def model_page(session: Any, monitor: Any, registry_view: RegistryView, name: str) -> dict[str, Any] | None:
    rows = session.scalars(
        sa.select(Evaluation)
        .options(selectinload(Evaluation.features))
        .where(Evaluation.model_name == name)
        .order_by(Evaluation.id.desc())
        .limit(MAX_POINTS)
    ).all()
    rows = list(reversed(rows))
    reg = registry_view.model(name)
    if not rows and reg["error"] is not None:
        return None
    alerts = alert_rows(session, model=name)
    now = utcnow()
    champion = reg["aliases"].get(monitor.settings.champion_alias) or (
        rows[-1].model_version if rows else None
    )
    version_info = registry_view.version(name, champion) if champion else {}
    history = [dict(e, url=registry_view.version_url(name, str(e.get("version")))) for e in reg["history"]]
    return {
        "name": name,
        "evaluations": rows[::-1],
        "alerts": alerts,
        "status": model_status(rows[-1] if rows else None, alerts),
        "champion": champion,
        "aliases": reg["aliases"],
        "registry_error": reg["error"],
        "champion_url": registry_view.version_url(name, champion) if champion else None,
        "run_url": registry_view.run_url(version_info.get("run_id"), version_info.get("experiment_id")),
        "history": history[::-1],
        "metrics": metrics_for(name, reg["history"], episode_spans(session, alerts, name), registry_view,
                               now),
        "charts": model_charts(rows, reg["history"], monitor.settings.champion_alias),
        "estimate_chart": estimate_chart([r for r in rows if r.status == "ok"]),
        "track_record": _track_record(session, name),
        "challengers": challenger_section(session, name, {r.id: r for r in rows}),
    }


def challenger_section(session: Any, name: str, evaluations: dict[int, Evaluation]) -> dict[str, Any]:
    """Champion against challenger (and `previous` guarding a new champion): the paired batch losses,
    the sequential tests with their evidence, and the decisions (monitor/loop_api.py reads the same)."""
    from monitor.loop_api import challengers_of

    found = challengers_of(session, name, limit=MAX_POINTS)
    scores = [s for s in reversed(found["scores"]) if s["relative_gain"] is not None]
    charts = []
    for test in found["tests"][:3]:
        mine = [s for s in scores if s["version"] == test["version"] and s["role"] == test["role"]
                and s["champion_version"] == test["champion_version"]]
        if not mine:
            continue
        other = "previous" if test["role"] == "guard" else "challenger"
        labels = [_label(evaluations[s["evaluation_id"]].finished_at) if s["evaluation_id"] in evaluations
                  else f"#{s['evaluation_id']}" for s in mine]
        charts.append({
            "id": f"chart-challenger-{test['id']}",
            "title": f"Champion v{test['champion_version']} against {other} v{test['version']}: "
                     f"mean {mine[0]['loss'].replace('_', ' ')} per batch (same rows)",
            "payload": {"labels": labels, "ids": [s["evaluation_id"] for s in mine], "markers": [],
                        "datasets": [
                            {"label": f"champion v{test['champion_version']}",
                             "data": [s["champion_loss"] for s in mine]},
                            {"label": f"{other} v{test['version']}", "data": [s["loss_value"] for s in mine]},
                        ]},
        })
    for test in found["tests"]:
        state = test["state"] or {}
        test["mean_gain"] = (state.get("sum_gain", 0.0) / test["batches"]) if test["batches"] else None
        test["e_better"] = math.exp(min(state.get("log_wealth_better", 0.0), 700.0))
        test["e_worse"] = math.exp(min(state.get("log_wealth_worse", 0.0), 700.0))
        test["threshold"] = 1.0 / test["alpha"]
    return {**found, "charts": charts}


def _track_record(session: Any, name: str) -> dict[str, Any]:
    from monitor.labels import track_record_of

    return track_record_of(session, name).as_dict()


def estimate_chart(ok: list[Evaluation]) -> dict[str, Any] | None:
    """Estimated and realized error of the primary metric on one chart, the interval as a band
    (lower and upper bound, the band filled between them). None when no evaluation has an estimate."""
    with_estimate = [r for r in ok if isinstance(r.estimate, dict) and r.estimate.get("metrics")]
    if not with_estimate:
        return None
    primary = with_estimate[-1].estimate.get("primary") or "mse"
    blocks = [((r.estimate or {}).get("metrics") or {}).get(primary) or {} for r in ok]
    realized = [{"mse": r.mse, "accuracy": r.accuracy}.get(primary) if r.labels != "pending" else None
                for r in ok]
    label = primary.upper() if primary in ("mse", "mae") else primary
    confidence = round(100 * float(with_estimate[-1].estimate.get("confidence") or 0.9))
    return {"labels": [_label(r.finished_at) for r in ok], "ids": [r.id for r in ok],
            "datasets": [
                {"label": f"{confidence} % interval (lower)", "data": [b.get("lower") for b in blocks],
                 "band": True},
                {"label": f"{confidence} % interval (upper)", "data": [b.get("upper") for b in blocks],
                 "band": True, "fill": "-1"},
                {"label": f"estimated {label}", "data": [b.get("estimate") for b in blocks], "dashed": True},
                {"label": f"realized {label}", "data": realized},
            ]}


def model_charts(
    rows: list[Evaluation], history: list[dict[str, Any]], champion_alias: str
) -> dict[str, Any]:
    """Chart.js-ready series over the model's ok evaluations (oldest first) and alias markers."""
    ok = [r for r in rows if r.status == "ok"]
    labels = [_label(r.finished_at) for r in ok]
    ids = [r.id for r in ok]
    if any(r.accuracy is not None or r.task == "classification" for r in ok):
        perf = [(r.report or {}).get("performance") or {} for r in ok]
        errors = [
            {"label": "accuracy", "data": [r.accuracy for r in ok]},
            {"label": "baseline accuracy", "data": [r.baseline_accuracy for r in ok], "dashed": True},
            {"label": "balanced accuracy", "data": [p.get("balanced_accuracy") for p in perf]},
            {"label": "macro F1", "data": [p.get("macro_f1") for p in perf]},
        ]
    else:
        errors = [
            {"label": "MSE", "data": [r.mse for r in ok]},
            {"label": "baseline MSE", "data": [r.baseline_mse for r in ok], "dashed": True},
            {"label": "MAE", "data": [r.mae for r in ok]},
            {"label": "baseline MAE", "data": [r.baseline_mae for r in ok], "dashed": True},
        ]
    features: list[str] = []
    for r in ok:
        for f in r.features:
            if f.feature not in features:
                features.append(f.feature)
    scores = []
    for feature in features:
        points = []
        for r in ok:
            results = [f for f in r.features if f.feature == feature]
            primary = _primary(results, r.report or {}, feature)
            points.append(primary.statistic if primary is not None else None)
        scores.append({"label": f"{feature} ({_test_name(ok, feature)})", "data": points})
    share = [
        {
            "label": "drifted features",
            "data": [
                (len(r.drifted_features or []) / len({f.feature for f in r.features})) if r.features else None
                for r in ok
            ],
        }
    ]
    return {
        "labels": labels,
        "ids": ids,
        "errors": errors,
        "scores": scores,
        "share": share,
        "markers": alias_markers(ok, history, champion_alias),
    }


def alias_markers(
    ok: list[Evaluation], history: list[dict[str, Any]], champion_alias: str
) -> list[dict[str, Any]]:
    """Where the champion moved, as chart x positions: the first evaluation after the move that used the
    new version (else the first evaluation after the move by time). Moves after the last point are kept
    at the end so they stay visible."""
    markers = []
    for entry in history:
        if entry.get("alias") != champion_alias:
            continue
        at = delivery_metrics.parse_time(entry.get("at"))
        if at is None or not ok:
            continue
        version = str(entry.get("version"))
        after = [i for i, r in enumerate(ok) if _aware(r.finished_at) >= at]
        same = [i for i in after if ok[i].model_version == version]
        index = same[0] if same else (after[0] if after else len(ok) - 1)
        markers.append(
            {
                "index": index,
                "label": f"v{version}",
                "version": version,
                "at": entry.get("at"),
                "reason": str(entry.get("reason") or ""),
            }
        )
    return markers


def _primary(results: list[Any], report: dict[str, Any], feature: str) -> Any:
    """The test that decides for this feature (the report's ``decides``), else the first with a score."""
    deciding = (report.get("features") or {}).get(feature) or {}
    for r in results:
        if (deciding.get(r.test) or {}).get("decides") and r.statistic is not None:
            return r
    return next((r for r in results if r.statistic is not None), None)


def _test_name(ok: list[Evaluation], feature: str) -> str:
    for r in reversed(ok):
        primary = _primary([f for f in r.features if f.feature == feature], r.report or {}, feature)
        if primary is not None:
            return primary.test
    return "score"


# --- one evaluation -----------------------------------------------------------------------------------


def evaluation_page(session: Any, evaluation_id: int) -> dict[str, Any] | None:
    ev = session.get(Evaluation, evaluation_id, options=[selectinload(Evaluation.features)])
    if ev is None:
        return None
    report = ev.report or {}
    profile = reference_profile(session, ev.model_name, ev.model_version)
    features = []
    feature_names = list((report.get("features") or {}).keys())
    for f in ev.features:
        if f.feature not in feature_names:
            feature_names.append(f.feature)
    distributions = report.get("distributions") or {}
    charts = {}
    for name in feature_names:
        tests = report.get("features", {}).get(name) or {}
        rows = [f for f in ev.features if f.feature == name]
        features.append(
            {
                "name": name,
                "drifted": name in (ev.drifted_features or []),
                "tests": [_test_row(t, tests.get(t.test) or {}) for t in rows]
                or [_test_row(None, v) for v in tests.values()],
                "quality": ((report.get("quality") or {}).get("columns") or {}).get(name),
            }
        )
        charts[name] = distribution_chart(distributions.get(name), _profile_part(profile, name))
    residuals = distribution_chart(distributions.get("residuals"), _profile_part(profile, "residuals"))
    concept = [_test_row(None, v) for v in (report.get("concept") or {}).values()]
    prediction = [_test_row(None, v) for v in (report.get("prediction") or {}).values()]
    return {
        "evaluation": ev,
        "report": report,
        "features": features,
        "charts": charts,
        "residuals": residuals,
        "concept": concept,
        "prediction": prediction,
        "performance": report.get("performance") or {},
        "quality": report.get("quality") or {},
        "verdicts": report.get("verdicts") or {},
        "status": evaluation_status(ev),
        "current_stored": bool(distributions),
    }


def _test_row(stored: Any, reported: dict[str, Any]) -> dict[str, Any]:
    def pick(attr: str) -> Any:
        value = getattr(stored, attr, None) if stored is not None else None
        return value if value is not None else reported.get(attr)

    return {
        "test": pick("test"),
        "target": reported.get("target"),
        "statistic": pick("statistic"),
        "p_value": pick("p_value"),
        "adjusted_p_value": pick("adjusted_p_value"),
        "threshold": pick("threshold"),
        "drift": reported.get("drift"),
        "adjusted_drift": reported.get("adjusted_drift", getattr(stored, "drift", None)),
        "decides": reported.get("decides", True),
        "note": reported.get("note"),
    }


def reference_profile(session: Any, model: str, version: str) -> Any:
    """The newest stored reference profile of this model version, or None."""
    blob = session.scalar(
        sa.select(StoredProfile.profile)
        .where(StoredProfile.model_name == model, StoredProfile.model_version == version)
        .order_by(StoredProfile.id.desc())
        .limit(1)
    )
    if blob is None:
        return None
    try:
        from monitor.drift import ReferenceProfile

        return ReferenceProfile.from_bytes(bytes(blob))
    except Exception:  # noqa: BLE001 - an unreadable profile just means no reference chart
        return None


def _profile_part(profile: Any, name: str) -> Any:
    if profile is None:
        return None
    if name in ("residuals", "predictions") and name not in profile.features:
        return getattr(profile, name, None)
    return profile.features.get(name)


def distribution_chart(stored: dict[str, Any] | None, part: Any, bins: int = 12) -> dict[str, Any] | None:
    """Reference and current as shares per bin.

    ``stored`` (from the report, when the drift engine records it): ``{"edges": [...],
    "reference_counts": [...], "current_counts": [...]}`` — both distributions over the same bins.
    Otherwise only the reference is known (the batch itself is not kept): a histogram of the stored
    profile's reference values on equal-width bins.
    """
    if stored and stored.get("edges") and stored.get("reference_counts") is not None:
        edges = [float(e) for e in stored["edges"]]
        series = [{"label": "reference", "data": _shares(stored["reference_counts"])}]
        if stored.get("current_counts") is not None:
            series.append({"label": "current", "data": _shares(stored["current_counts"])})
        return {"labels": _bin_labels(edges), "datasets": series, "source": "report"}
    if part is None or getattr(part, "kind", None) != "numeric" or part.n_finite == 0:
        if part is not None and getattr(part, "kind", None) == "categorical":
            return {
                "labels": list(part.categories),
                "datasets": [{"label": "reference", "data": _shares(part.counts.tolist())}],
                "source": "profile",
            }
        return None
    values = part.sorted_values
    low, high = float(values[0]), float(values[-1])
    if not math.isfinite(low) or not math.isfinite(high):
        return None
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    return {
        "labels": _bin_labels(edges.tolist()),
        "datasets": [{"label": "reference", "data": _shares(counts.tolist())}],
        "source": "profile",
    }


def _shares(counts: list[Any]) -> list[float]:
    total = float(sum(c or 0 for c in counts))
    return [round((c or 0) / total, 4) if total else 0.0 for c in counts]


def _bin_labels(edges: list[float]) -> list[str]:
    return [f"{_fmt(a)}–{_fmt(b)}" for a, b in zip(edges[:-1], edges[1:], strict=False)]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def _label(value: datetime | None) -> str:
    return _aware(value).strftime("%m-%d %H:%M:%S") if value is not None else ""


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
