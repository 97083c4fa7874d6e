"""Prompt delivery: send what an evaluation queued as soon as its transaction commits.

The evaluation listener (``AlertEngine.enqueue``) counts the outbox rows it adds in
``session.info[OUTBOX_MARK]``. An SQLAlchemy ``after_commit`` listener on the monitor's session
factory reads that count once the evaluation's transaction has committed and, if rows were written,
wakes a background delivery thread in this process. The caller (the push endpoint, a scheduled
round) never waits for it: the HTTP response goes out while the thread sends.

- Nothing is sent twice: the thread claims rows exactly like the scheduled cycle
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a lease on SQLite), so the leader's periodic job, this
  thread, and the threads of other gunicorn workers or replicas can all run at once.
- Nothing is lost: the rows are durable before the wake-up. If this process dies before sending, or
  a receiver fails, the periodic leader job (``ALERT_DELIVERY_INTERVAL_SECONDS``) picks them up and
  owns retries with backoff, repeat notices, silences ending and the Alertmanager keep-alive.
- A wake-up during a running delivery is remembered and runs one more pass after it, so rows
  committed while the thread was sending are not left for the periodic job. One thread per process
  at most; it exits when there is nothing left to do (no thread survives a gunicorn fork).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from monitor.alerts.delivery import DeliveryWorker
from monitor.alerts.engine import OUTBOX_MARK

log = logging.getLogger("monitor.alerts.delivery")


class PromptDelivery:
    """Wake-ups after commits → one background delivery thread per process, at most."""

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker
        self.passes = 0  # delivery passes run (tests, debugging)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._stopping = False
        self._closed = False
        self._pid = os.getpid()

    # --- wiring -----------------------------------------------------------------------------------
    def watch(self, session_factory: sessionmaker) -> None:
        """Wake after every commit of ``session_factory``'s sessions that wrote outbox rows; drain the
        thread when the factory's engine is disposed (``Monitor.close``)."""
        sa.event.listen(session_factory, "after_commit", self._after_commit)
        sa.event.listen(session_factory, "after_transaction_end", self._after_transaction_end)
        bind = session_factory.kw.get("bind")
        if isinstance(bind, sa.Engine):
            sa.event.listen(bind, "engine_disposed", lambda _engine: self.drain())

    def _after_commit(self, session: Session) -> None:
        # Called once the outermost transaction has committed: the rows are visible to any claimer.
        if session.info.pop(OUTBOX_MARK, 0):
            self.wake()

    @staticmethod
    def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # rolled back (a commit popped it already): nothing to send
            session.info.pop(OUTBOX_MARK, None)

    # --- the thread -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def wake(self) -> None:
        """Deliver due rows now in the background; never blocks and never raises."""
        try:
            with self._lock:
                if self._closed:
                    return  # shutting down: the leader's delivery cycle sends these rows
                if self._pid != os.getpid():  # forked: the parent's thread does not exist here
                    self._pid, self._thread, self._again = os.getpid(), None, False
                if self._thread is not None:
                    self._again = True  # the running pass may have claimed before these rows existed
                    return
                self._again = False
                self._thread = threading.Thread(target=self._run, name="alerts-prompt-delivery",
                                                daemon=True)
                self._thread.start()
        except Exception:  # noqa: BLE001 - a failed wake-up only means the periodic job sends it
            log.exception("cannot start prompt alert delivery; the delivery cycle will send it")
            with self._lock:
                self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.worker.deliver_due(stop=lambda: self._stopping)
            except Exception:  # noqa: BLE001 - a database blip: the periodic cycle retries
                log.exception("prompt alert delivery failed; the delivery cycle will retry")
            with self._lock:
                self.passes += 1
                if not self._again or self._stopping:
                    self._thread = None
                    return
                self._again = False

    def close(self, timeout: float = 10.0) -> None:
        """Shutdown (SIGTERM): take no more wake-ups, let the row being sent finish and be recorded,
        and wait for the thread at most ``timeout`` seconds. Rows not claimed stay pending (handed
        back to the delivery cycle of whichever process runs next)."""
        with self._lock:
            self._closed = True
        self.drain(timeout)

    def drain(self, timeout: float = 10.0) -> None:
        """Stop after the row being sent (if any) and wait for the thread; later wake-ups still work."""
        with self._lock:
            thread = self._thread
            if thread is None or thread is threading.current_thread():
                return
            self._stopping = True
        thread.join(timeout)
        with self._lock:
            self._stopping = False


def install_prompt_delivery(session_factory: Any, worker: DeliveryWorker) -> PromptDelivery:
    prompt = PromptDelivery(worker)
    prompt.watch(session_factory)
    return prompt
