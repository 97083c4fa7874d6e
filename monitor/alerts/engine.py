"""From evaluations to alert state and queued notifications (the outbox's writing side).

``AlertEngine.on_evaluation`` is the evaluation service's listener: it runs inside the evaluation's
transaction, so the alert state and the outbox rows commit (or roll back) together with the
evaluation row. ``AlertEngine.tick`` runs before each delivery cycle: it queues the notifications
that time alone makes due (repeat interval passed, a silence ended).

``enqueue`` also counts the rows it adds in ``session.info[OUTBOX_MARK]``: after the commit,
``monitor.alerts.prompt`` reads that count and wakes delivery in this process at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.alerts import silences as silence_rules
from monitor.alerts.config import AlertConfig
from monitor.alerts.episodes import close_episode, open_episode
from monitor.alerts.lifecycle import firing_notice_due, observe, resolved_notice_due
from monitor.alerts.models import Alert, Delivery, Silence, aware
from monitor.alerts.payloads import alert_document
from monitor.alerts.rules import (
    EvaluationLike,
    Signal,
    _performance,
    alert_labels,
    evaluate_rules,
    fingerprint,
)
from monitor.db import utcnow

log = logging.getLogger("monitor.alerts")
# session.info key: outbox rows added in the session's current transaction (read after its commit).
OUTBOX_MARK = "driftline.alerts.outbox_rows"
# session.info key: {evaluation id: {alertname: its alert row after this evaluation, or None when the
# rule has none}} for the rules the evaluation had an opinion on. Later listeners in the transaction
# (the retraining requester) read it instead of selecting the rows again.
DECIDED = "driftline.alerts.decided"


def _rows_to_change(supersede: bool, lock: bool) -> sa.Select:
    """The alert rows one evaluation may change: its rules' fingerprints (``fingerprints``) and, with
    ``supersede``, the open alerts of the model's (``model``) other versions (``version``). Built
    once: constructing the statement each time was a third of the alert engine's share of a push."""
    condition = Alert.fingerprint.in_(sa.bindparam("fingerprints", expanding=True))
    if supersede:
        condition = sa.or_(condition, sa.and_(Alert.model_name == sa.bindparam("model"),
                                              Alert.model_version != sa.bindparam("version"),
                                              Alert.state.in_(("firing", "pending"))))
    stmt = sa.select(Alert).where(condition).order_by(Alert.id)
    # PostgreSQL locks them in id order: concurrent evaluations lock alike, no deadlock.
    return stmt.with_for_update() if lock else stmt


_ROWS_TO_CHANGE = {(supersede, lock): _rows_to_change(supersede, lock)
                   for supersede in (False, True) for lock in (False, True)}


def mark_outbox(session: Session, count: int) -> None:
    """Note that ``count`` outbox rows were added in this session's transaction."""
    if count:
        session.info[OUTBOX_MARK] = session.info.get(OUTBOX_MARK, 0) + count


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def active_silences(session: Session, now: datetime) -> list[Silence]:
    rows = session.scalars(sa.select(Silence).where(Silence.ends_at > now)).all()
    for row in rows:
        row.starts_at, row.ends_at = aware(row.starts_at), aware(row.ends_at)
    return [s for s in rows if silence_rules.is_active(s, now)]


class AlertEngine:
    def __init__(self, config: AlertConfig) -> None:
        self.config = config

    # --- links ---------------------------------------------------------------------------------
    def evaluation_url(self, evaluation_id: int | None) -> str | None:
        return f"{self.config.public_url}/evaluations/{evaluation_id}" if evaluation_id is not None else None

    def mlflow_run_url(self, evaluation: EvaluationLike) -> str | None:
        run_id = getattr(evaluation, "mlflow_run_id", None)
        if not run_id:
            return None
        experiment = getattr(evaluation, "mlflow_experiment_id", None) or \
            ((evaluation.report or {}).get("mlflow") or {}).get("experiment_id")
        base = self.config.mlflow_public_url
        if experiment:
            return f"{base}/#/experiments/{experiment}/runs/{run_id}"
        return f"{base}/#/runs/{run_id}"  # the MLflow UI redirects a bare run id to its experiment

    # --- the listener --------------------------------------------------------------------------
    def on_evaluation(self, session: Session, evaluation: EvaluationLike,
                      now: datetime | None = None) -> None:
        now = now or utcnow()
        signals = evaluate_rules(evaluation, self.config.rules)
        version = str(evaluation.model_version)
        wanted = {fingerprint(alert_labels(s.alertname, evaluation.model_name, version)): s for s in signals}
        # One round trip (in the evaluation's transaction, on the push path) for every alert row this
        # evaluation may change: its own rules' rows, and the other versions' open alerts it ends.
        supersede = evaluation.status in ("ok", "rejected") and version not in ("", "unknown")
        if not wanted and not supersede:
            return
        stmt = _ROWS_TO_CHANGE[(supersede, _is_postgres(session))]
        rows = session.scalars(stmt, {"fingerprints": list(wanted), "model": evaluation.model_name,
                                      "version": version}).all()
        mine = {a.fingerprint: a for a in rows if a.fingerprint in wanted}
        self._supersede_other_versions(session, evaluation, now,
                                       [a for a in rows if a.fingerprint not in wanted])
        silences: list[Sequence[Silence]] = []

        def active() -> Sequence[Silence]:  # read only when a firing notice may be due
            if not silences:
                silences.append(active_silences(session, now))
            return silences[0]

        decided = {signal.alertname: self._apply(session, evaluation, signal, fp, mine.get(fp), active, now)
                   for fp, signal in wanted.items()}
        session.info.setdefault(DECIDED, {})[evaluation.id] = decided

    def __call__(self, session: Session, evaluation: EvaluationLike) -> None:
        self.on_evaluation(session, evaluation)

    def on_labels(self, session: Session, evaluation: EvaluationLike, now: datetime | None = None) -> None:
        """Labels completed an evaluation (monitor/labels.py), in that transaction: the rules that had
        no opinion without labels (concept drift, performance) read it now, once, and data drift when
        the labels' drift turned its verdict (``report.labels.revised``); the estimate's alert is
        settled: resolved, its annotation saying whether the labels confirmed it."""
        from monitor.alerts.rules import _concept_drift, _data_drift, _performance

        now = now or utcnow()
        silences = active_silences(session, now)
        version = str(evaluation.model_version)
        signals = [_concept_drift(evaluation), _performance(evaluation, self.config.rules)]
        revised = (((evaluation.report or {}).get("labels") or {}).get("revised")) or []
        if "data_drift" in revised:  # a classifier's label drift turned the verdict: seen once, now
            signals.append(_data_drift(evaluation))
        for signal in signals:
            if signal is not None:
                fp = fingerprint(alert_labels(signal.alertname, evaluation.model_name, version))
                self._apply(session, evaluation, signal, fp, self._lock_alert(session, fp),
                            lambda: silences, now)
        self._settle_estimate(session, evaluation, now)

    def _settle_estimate(self, session: Session, ev: EvaluationLike, now: datetime) -> None:
        labels = alert_labels("estimated_performance_degradation", ev.model_name, str(ev.model_version))
        alert = self._lock_alert(session, fingerprint(labels))
        if alert is None or alert.state not in ("firing", "pending") or \
                (alert.last_evaluation_id or 0) > ev.id:
            return  # a later batch's estimate speaks for the alert now
        _normalise_times(alert)
        performance = _performance(ev, self.config.rules)
        confirmed = performance is not None and performance.bad
        estimate = getattr(ev, "estimate", None) or {}
        judged = (estimate.get("judged") or {}).get(estimate.get("primary")) or {}
        realized = judged.get("realized")
        text = (f"labels of batch {ev.batch_id} arrived: realized {estimate.get('primary', 'error')} "
                f"{realized:.3g}; " if isinstance(realized, int | float) else
                f"labels of batch {ev.batch_id} arrived; ")
        text += ("degradation confirmed (performance_degradation)" if confirmed
                 else "degradation not confirmed")
        alert.bad_streak = alert.clean_streak = 0
        if alert.state == "pending":
            alert.state = "inactive"
            return
        alert.state, alert.ends_at = "resolved", now
        alert.annotations = {**alert.annotations, "resolved_by": text,
                             "resolved_evaluation_url": self.evaluation_url(ev.id) or "",
                             "confirmed": "true" if confirmed else "false"}
        close_episode(session, alert, now, ev.id, text)
        session.flush()
        if alert.notified:
            self.enqueue(session, alert, "resolved", now, ev.id)

    def _lock_alert(self, session: Session, fp: str) -> Alert | None:
        stmt = sa.select(Alert).where(Alert.fingerprint == fp)
        if _is_postgres(session):
            stmt = stmt.with_for_update()
        return session.scalars(stmt).first()

    def _apply(self, session: Session, ev: EvaluationLike, signal: Signal, fp: str, alert: Alert | None,
               silences: Callable[[], Sequence[Silence]], now: datetime) -> Alert | None:
        """The signal applied to the rule's alert row (created when it first goes bad); that row."""
        if alert is None:
            if not signal.bad:
                return None  # nothing to remember about a clean rule that never went bad
            labels = alert_labels(signal.alertname, ev.model_name, str(ev.model_version))
            alert = Alert(fingerprint=fp, alertname=signal.alertname, model_name=ev.model_name,
                          model_version=str(ev.model_version), severity=signal.severity, labels=labels,
                          annotations={}, state="inactive", bad_streak=0, clean_streak=0, notified=False,
                          episodes=0)
            session.add(alert)
        _normalise_times(alert)
        transition = observe(alert, signal.bad, now, self.config.lifecycle)
        alert.last_evaluation_id = ev.id
        if signal.bad:
            alert.annotations = self._annotations(ev, signal)
            alert.generator_url = self.evaluation_url(ev.id)
        if transition == "fired":
            alert.episodes = (alert.episodes or 0) + 1
            alert.fired_evaluation_id = ev.id
            open_episode(session, alert, ev.id, now)
            log.info("alert fired", extra={"alert": signal.alertname, "model": ev.model_name,
                                           "fingerprint": fp})
        elif transition == "resolved":
            alert.annotations = {**alert.annotations,
                                 "resolved_by": f"{self.config.lifecycle.resolve_after} clean evaluation(s), "
                                                f"last #{ev.id}",
                                 "resolved_evaluation_url": self.evaluation_url(ev.id) or ""}
            close_episode(session, alert, now, ev.id, alert.annotations["resolved_by"])
            log.info("alert resolved", extra={"alert": signal.alertname, "model": ev.model_name,
                                              "fingerprint": fp})
        if alert.id is None:
            session.flush()  # a new alert needs its id for the outbox rows; updates flush at commit
        if resolved_notice_due(alert, transition):
            self.enqueue(session, alert, "resolved", now, ev.id)
        elif firing_notice_due(alert, now, self.config.lifecycle, silenced=False) \
                and not self._silenced(alert, silences(), now):
            self.enqueue(session, alert, "firing", now, ev.id)
        return alert

    def _supersede_other_versions(self, session: Session, ev: EvaluationLike, now: datetime,
                                  alerts: Sequence[Alert]) -> None:
        """A new champion version is a new alert identity; the old version's open alerts end here.

        Only evaluations that resolved a real version count (a failed one may say "unknown");
        ``alerts`` are the model's other versions' firing or pending alerts, locked by the caller."""
        for alert in alerts:
            _normalise_times(alert)
            was_firing = alert.state == "firing"
            alert.bad_streak = alert.clean_streak = 0
            if not was_firing:
                alert.state = "inactive"
                continue
            alert.state, alert.ends_at = "resolved", now
            alert.annotations = {**alert.annotations,
                                 "resolved_by": f"version {ev.model_version} replaced "
                                                f"version {alert.model_version}"}
            close_episode(session, alert, now, ev.id, alert.annotations["resolved_by"])
            if alert.notified:
                self.enqueue(session, alert, "resolved", now, ev.id)

    def _annotations(self, ev: EvaluationLike, signal: Signal) -> dict[str, str]:
        ann = {"summary": signal.summary,
               "description": f"{signal.alertname} ({signal.severity}) from evaluation #{ev.id}"
                              f" of batch {ev.batch_id} ({ev.n_rows if ev.n_rows is not None else '?'} rows)",
               "evaluation_id": str(ev.id), "batch_id": str(ev.batch_id or "")}
        ann.update(signal.details)
        if (url := self.evaluation_url(ev.id)) is not None:
            ann["evaluation_url"] = url
        if (run := self.mlflow_run_url(ev)) is not None:
            ann["mlflow_run_url"] = run
            ann["mlflow_run_id"] = str(ev.mlflow_run_id)
        return ann

    @staticmethod
    def _silenced(alert: Alert, silences: Sequence[Silence], now: datetime) -> bool:
        return bool(silence_rules.silenced_by(silences, alert.labels, now))

    # --- the outbox ----------------------------------------------------------------------------
    def enqueue(self, session: Session, alert: Alert, kind: str, now: datetime,
                evaluation_id: int | None, skip: frozenset[str] = frozenset()) -> list[Delivery]:
        """Outbox rows for every configured receiver but those in ``skip`` (a receiver is not told
        that it is itself unreachable)."""
        doc = alert_document(status=kind, labels=alert.labels, annotations=alert.annotations,
                             starts_at=alert.starts_at, ends_at=alert.ends_at,
                             generator_url=alert.generator_url, fingerprint=alert.fingerprint)
        rows = [Delivery(alert_id=alert.id, fingerprint=alert.fingerprint, receiver=r.name, kind=kind,
                         evaluation_id=evaluation_id, alert=doc, status="pending", attempts=0,
                         failed_attempts=0, next_attempt_at=now, created_at=now)
                for r in self.config.receivers if r.name not in skip]
        session.add_all(rows)
        mark_outbox(session, len(rows))
        if kind == "firing":
            alert.notified = True
            alert.last_notified_at = now
        return rows

    # --- time-driven notifications ---------------------------------------------------------------
    def tick(self, session: Session, now: datetime | None = None) -> int:
        """Queue repeat notifications and the ones a silence held back; returns how many alerts."""
        now = now or utcnow()
        marked = session.info.get(OUTBOX_MARK)
        silences = active_silences(session, now)
        stmt = sa.select(Alert).where(Alert.state == "firing").order_by(Alert.id)
        if _is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        queued = 0
        for alert in session.scalars(stmt).all():
            _normalise_times(alert)
            if firing_notice_due(alert, now, self.config.lifecycle, self._silenced(alert, silences, now)):
                skip = frozenset({alert.labels.get("dependency", "")})
                self.enqueue(session, alert, "firing", now, alert.last_evaluation_id, skip)
                queued += 1
        # The delivery cycle that ticks sends these rows itself: no prompt wake-up for them.
        if marked is None:
            session.info.pop(OUTBOX_MARK, None)
        else:
            session.info[OUTBOX_MARK] = marked
        return queued


def _normalise_times(alert: Any) -> None:
    for name in ("starts_at", "ends_at", "last_notified_at", "refreshed_at"):
        setattr(alert, name, aware(getattr(alert, name)))
