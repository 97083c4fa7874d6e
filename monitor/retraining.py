"""Retraining on drift: when a model's `concept_drift` or `performance_degradation` alert fires (the
alert rules' K-of-N, ALERT_FIRE_AFTER), the monitor asks for a retraining, and runs it or hands it on.

- ``keep_rows`` (in the evaluation's transaction, for batches evaluated while a trigger alert fires):
  the batch's labelled rows are kept (at most MONITOR_RETRAIN_MAX_ROWS of each, a seeded sample), the
  last MONITOR_RETRAIN_BATCHES per model (older ones deleted in the same commit, but never those of
  an open request); clean batches cost nothing.
- ``RetrainingRequester`` (an evaluation listener, after the alert engine's): inserts a request when such
  an alert is firing for the champion, no request of the model is open (the unique ``active_model``), the
  last one is older than MONITOR_RETRAIN_COOLDOWN_SECONDS, and no challenger is already on trial. The
  request names the batches the job trains on: those since the alert fired (the drifted ones), at most
  MONITOR_RETRAIN_BATCHES.
- ``RetrainingLauncher`` (a job of the scheduler leader): claims requested rows and either runs
  ``python -m trainer retrain`` as a one-shot subprocess (local mode and compose: the monitor's image
  holds the trainer, so no Docker socket and no second always-on service are needed) or POSTs the
  request to MONITOR_RETRAIN_WEBHOOK_URL (an outside orchestrator fetches the rows from
  ``/api/retraining/<id>/data`` and reports back to ``POST /api/retraining/<id>``). A job that fails or
  times out is recorded and alerted (`retraining_failed`); nothing moves. Only `challenger` is ever set
  by the job; promotion is the paired test's business.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor import loop_alerts
from monitor.db import insert_with_file, utcnow
from monitor.loop_models import ChallengerTest, LabelledBatch, RetrainingRequest
from monitor.models import Evaluation
from monitor.parquet_writer import write_rows
from monitor.settings import MonitorConfig, MonitorSettings

log = logging.getLogger(__name__)
TRIGGERS = ("concept_drift", "performance_degradation")


def keep_rows(session: Session, evaluation: Evaluation, frame: pd.DataFrame, keep: int,
              max_rows: int | None = None) -> None:
    frame = sample_rows(frame, max_rows)
    values = {"model_name": evaluation.model_name, "model_version": evaluation.model_version,
              "evaluation_id": evaluation.id, "batch_id": evaluation.batch_id, "n_rows": len(frame),
              "created_at": utcnow()}
    # The Parquet goes to a temporary file, not memory: the batch is in memory already, and a second
    # copy of it was most of a large push's peak (a 1M x 20 batch: 160 MB more).
    with tempfile.TemporaryFile() as parquet:
        write_rows(frame, parquet)
        # As a query parameter a large file cost 1 GB and 5 s more (monitor/pg_copy.py).
        insert_with_file(session, LabelledBatch, values, "data", parquet)
    name = evaluation.model_name
    old = set(session.scalars(sa.select(LabelledBatch.id).where(LabelledBatch.model_name == name)
                              .order_by(LabelledBatch.id.desc()).offset(keep)))
    # An open request's batches stay until its job has read them: a job that waits behind another
    # model's (one job at a time) must not find its rows pruned by the drifted batches meanwhile.
    for batches in session.scalars(sa.select(RetrainingRequest.batches).where(
            RetrainingRequest.model_name == name, RetrainingRequest.active_model.is_not(None))):
        old -= {int(b) for b in batches or []}
    if old:
        session.execute(sa.delete(LabelledBatch).where(LabelledBatch.id.in_(sorted(old))))


def sample_rows(frame: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    """At most ``max_rows`` of a batch's rows: a simple random sample, seeded by the batch size (the
    same batch keeps the same rows), in the batch's order. Retraining on the last few batches needs
    their spread, not every row of a huge one: writing a 1M x 20 batch (160 MB) was 1.2-2.5 s of its
    push on PostgreSQL; 100,000 rows take a tenth."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    rows = np.sort(np.random.default_rng(len(frame)).choice(len(frame), max_rows, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


def batches_frame(session: Session, ids: list[int]) -> pd.DataFrame:
    rows = session.scalars(sa.select(LabelledBatch).where(LabelledBatch.id.in_(ids))
                           .order_by(LabelledBatch.id)).all()
    if not rows:
        raise LookupError("the batches of this request are no longer kept")
    return pd.concat([pd.read_parquet(io.BytesIO(r.data)) for r in rows], ignore_index=True)


class Interrupted(Exception):
    """The job was stopped by a signal (the monitor shutting down), not by its own failure."""


class RetrainingRequester:
    def __init__(self, settings: MonitorSettings, config: MonitorConfig) -> None:
        self.settings = settings
        self.config = config

    def enabled(self, model: str) -> bool:
        return self.settings.retrain_mode != "off" and self.config.model(model).retrain

    def __call__(self, session: Session, evaluation: Evaluation, frame: pd.DataFrame | None = None) -> None:
        if evaluation.status != "ok" or not self.enabled(evaluation.model_name):
            return
        alert = _firing_trigger(session, evaluation)
        if alert is None:
            return
        if frame is not None:
            keep_rows(session, evaluation, frame, self.settings.retrain_batches,
                      self.settings.retrain_max_rows)
        name = evaluation.model_name
        last = session.scalars(sa.select(RetrainingRequest).where(RetrainingRequest.model_name == name)
                               .order_by(RetrainingRequest.id.desc()).limit(1)).first()
        now = utcnow()
        if last is not None:
            if last.active_model is not None:
                return
            requested = last.requested_at if last.requested_at.tzinfo else last.requested_at.replace(
                tzinfo=now.tzinfo)
            if now - requested < timedelta(seconds=self.settings.retrain_cooldown_seconds):
                return
        on_trial = session.scalar(sa.select(sa.func.count()).select_from(ChallengerTest).where(
            ChallengerTest.model_name == name, ChallengerTest.champion_version == evaluation.model_version,
            ChallengerTest.role == "challenger",
            ChallengerTest.outcome.in_(("continue", "challenger_better"))))
        if on_trial:
            return  # a challenger is being judged (or has won and waits for its promotion) already
        since = alert.fired_evaluation_id or evaluation.id
        ids = list(session.scalars(sa.select(LabelledBatch.id).where(
            LabelledBatch.model_name == name, LabelledBatch.evaluation_id >= since)
            .order_by(LabelledBatch.id.desc()).limit(self.settings.retrain_batches)))
        if not ids:
            return
        request = RetrainingRequest(model_name=name, active_model=name,
                                    champion_version=evaluation.model_version, trigger=alert.alertname,
                                    evaluation_id=evaluation.id, launcher=self.settings.retrain_mode,
                                    status="requested", batches=sorted(ids), requested_at=now)
        try:
            with session.begin_nested():
                session.add(request)
                session.flush()
        except IntegrityError:
            return  # another worker opened the model's request first
        log.info("%s: retraining requested (%s since evaluation #%s, %d batches)", name, alert.alertname,
                 since, len(ids))


def _firing_trigger(session: Session, evaluation: Evaluation) -> Any:
    """The first firing alert of ``TRIGGERS`` for the evaluation's model version: from what the alert
    engine decided earlier in this transaction when it judged every trigger rule (a labelled batch),
    else read (one SELECT on the push path saved)."""
    from monitor.alerts.engine import DECIDED
    from monitor.alerts.models import Alert

    decided = session.info.get(DECIDED, {}).get(evaluation.id)
    if decided is not None and all(name in decided for name in TRIGGERS):
        firing = [a for name in TRIGGERS if (a := decided[name]) is not None and a.state == "firing"]
        return min(firing, key=lambda a: a.id) if firing else None
    return session.scalars(sa.select(Alert).where(
        Alert.model_name == evaluation.model_name, Alert.model_version == evaluation.model_version,
        Alert.alertname.in_(TRIGGERS), Alert.state == "firing").order_by(Alert.id)).first()


class RetrainingLauncher:
    def __init__(self, settings: MonitorSettings, sessions: sessionmaker, alert_engine: Any = None,
                 on_new_version: Any = None) -> None:
        self.settings = settings
        self.sessions = sessions
        self.alert_engine = alert_engine
        self.on_new_version = on_new_version  # (model name): a job set its challenger alias

    def run_pending(self) -> int:
        """Run (or hand on) every requested retraining; expire jobs past their timeout."""
        self._expire()
        done = 0
        while (claimed := self._claim()) is not None:
            request_id, model = claimed
            try:
                if self.settings.retrain_mode == "webhook":
                    self._hand_on(request_id)
                    continue
                version, error = self._run(request_id)
            except Interrupted as exc:
                # The monitor is stopping (its process group got the signal): the job is not the
                # model's fault. Run it again once, from the next leader; a second stop fails it.
                if self._requeue(request_id, str(exc)):
                    break
                version, error = None, f"{exc} twice"
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, nothing moves
                version, error = None, f"{type(exc).__name__}: {str(exc)[:500]}"
            self.finish(request_id, version, error)
            done += 1
            log.info("%s: retraining #%s %s", model, request_id, f"gave v{version}" if version else error)
        return done

    def _claim(self) -> tuple[int, str] | None:
        with self.sessions() as session, session.begin():
            stmt = sa.select(RetrainingRequest).where(RetrainingRequest.status == "requested") \
                .order_by(RetrainingRequest.id).limit(1)
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            request = session.scalars(stmt).first()
            if request is None:
                return None
            request.status, request.started_at = "running", utcnow()
            return request.id, request.model_name

    def _run(self, request_id: int) -> tuple[str | None, str | None]:
        with self.sessions() as session:
            request = session.get(RetrainingRequest, request_id)
            frame = batches_frame(session, list(request.batches))
            model, batch_ids = request.model_name, [str(b) for b in request.batches]
        with tempfile.TemporaryDirectory(prefix="driftline-retrain-") as tmp:
            path = os.path.join(tmp, "batches.parquet")
            frame.to_parquet(path, index=False)
            command = [sys.executable, "-m", "trainer", "retrain", "--model", model, "--data", path,
                       "--request", str(request_id), "--batches", ",".join(batch_ids)]
            if self.settings.retrain_with_reference:
                command.append("--with-reference")
            env = {**os.environ, "MLFLOW_TRACKING_URI": self.settings.tracking_uri,
                   "TRAINER_ACTOR": f"driftline-monitor (retraining #{request_id})"}
            try:
                done = subprocess.run(command, capture_output=True, text=True, env=env,  # noqa: S603
                                      timeout=self.settings.retrain_timeout_seconds, check=False)
            except subprocess.TimeoutExpired:
                return None, f"trainer retrain timed out after {self.settings.retrain_timeout_seconds:.0f} s"
        if done.returncode < 0:
            raise Interrupted(f"trainer retrain was stopped by signal {-done.returncode}")
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"trainer retrain exited {done.returncode}: {tail[:500]}"
        try:
            result = json.loads(done.stdout.strip().splitlines()[-1])
            return str(result["version"]), None
        except (ValueError, KeyError, IndexError):
            return None, f"trainer retrain printed no result: {done.stdout[-300:]}"

    def _requeue(self, request_id: int, why: str) -> bool:
        with self.sessions() as session, session.begin():
            request = session.get(RetrainingRequest, request_id)
            if request is None or request.status != "running" or request.error:
                return False
            request.status, request.started_at, request.error = "requested", None, f"{why}; run again"
            log.warning("%s: retraining #%s %s; it will run again", request.model_name, request_id, why)
            return True

    def _hand_on(self, request_id: int) -> None:
        import requests

        with self.sessions() as session:
            request = session.get(RetrainingRequest, request_id)
            body = {**request.as_dict(), "monitor_url": self.settings.public_url,
                    "data_url": f"{self.settings.public_url}/api/retraining/{request_id}/data",
                    "result_url": f"{self.settings.public_url}/api/retraining/{request_id}"}
        url = self.settings.retrain_webhook_url.get_secret_value()
        try:
            answer = requests.post(url, json=body, timeout=10)
            answer.raise_for_status()
        except requests.RequestException as exc:
            # The URL is a secret: name the receiver, not the address.
            self.finish(request_id, None, f"retraining webhook failed: {type(exc).__name__}")

    def finish(self, request_id: int, version: str | None, error: str | None) -> None:
        """Close a request (the subprocess's end, the webhook's report, or the timeout)."""
        now = utcnow()
        with self.sessions() as session, session.begin():
            request = session.get(RetrainingRequest, request_id)
            if request is None or request.status not in ("running", "requested"):
                return
            request.finished_at, request.active_model = now, None
            if version is not None and error is None:
                request.status, request.version, request.error = "succeeded", str(version), None
                loop_alerts.resolve(session, self.alert_engine, "retraining_failed", request.model_name,
                                    f"retraining #{request_id} gave v{version}", now)
                model_name = request.model_name
            else:
                model_name = None
                request.status, request.error = "failed", (error or "failed")[:2000]
                loop_alerts.fire(session, self.alert_engine, "retraining_failed", request.model_name,
                                 request.champion_version,
                                 f"retraining #{request_id} of {request.model_name} failed; nothing moved: "
                                 f"{request.error}", {"request_id": str(request_id), "error": request.error},
                                 now)
        if model_name is not None and self.on_new_version is not None:
            self.on_new_version(model_name)  # after the commit: the challenger is scored from the next push

    def _expire(self) -> None:
        limit = utcnow() - timedelta(seconds=self.settings.retrain_timeout_seconds * 2)
        with self.sessions() as session:
            stale = list(session.scalars(sa.select(RetrainingRequest.id).where(
                RetrainingRequest.status == "running", RetrainingRequest.started_at < limit)))
        for request_id in stale:
            self.finish(request_id, None, "no result within twice the retraining timeout "
                                          "(the job or the monitor stopped)")
