"""Restarts at the worst moment: right after an alert was queued, while its notification is on the
wire to a slow receiver. A graceful stop (SIGTERM) finishes and records it: nothing is sent twice.
A crash (SIGKILL) may send it again, with the same ``Idempotency-Key`` so the receiver can drop it."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

from tests.monitor.helpers import register_model
from tests.monitor.processes import rows, start_monitor, wait_for
from tests.services.receiver import Receiver

TOKEN = "t" * 24


def _evaluate(url: str, model: str, scenario: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    req = urllib.request.Request(f"{url}/api/models/{model}/evaluate", method="POST", headers=headers,
                                 data=json.dumps({"scenario": scenario, "seed": 11}).encode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 201


def _requests(receiver: Receiver, alertname: str) -> list:
    return [r for r in receiver.received if r.path == "/webhook"
            and r.body["commonLabels"].get("alertname") == alertname]


def test_sigterm_while_a_notification_is_on_the_wire_sends_it_once(
        tmp_path, monitor_db, tracking_server, mlflow_client, unique_name):
    receiver = Receiver(delay=2.0).start()
    name = unique_name("drain")
    register_model(mlflow_client, name, kind="identity")
    env = {"ALERT_WEBHOOK_URL": f"{receiver.url}/webhook", "ALERT_DELIVERY_INTERVAL_SECONDS": "1",
           "MONITOR_GRACEFUL_TIMEOUT_SECONDS": "20"}

    def start(label: str):  # noqa: ANN202
        return start_monitor(tmp_path / "monitor", label, db_url=monitor_db, tracking_url=tracking_server.url,
                             model=name, interval=3600, workers=2, **env)

    proc, url = start("first")
    try:
        _evaluate(url, name, "data_drift")
        wait_for(lambda: _requests(receiver, "data_drift"), 10, "the notification on the wire", proc)
        stopping = time.monotonic()
        proc.stop(timeout=30)  # SIGTERM to gunicorn and its workers while the receiver is still answering
        stop_seconds = time.monotonic() - stopping
        assert proc.proc.returncode == 0, proc.log_tail()
        assert stop_seconds < 20, f"shutdown took {stop_seconds:.1f} s"
        sent = rows(monitor_db, "SELECT status, attempts FROM alert_deliveries WHERE receiver = 'webhook'")
        assert [tuple(r) for r in sent] == [("sent", 1)], "the notification was sent but not recorded"

        proc, url = start("second")
        time.sleep(8)  # many delivery cycles: a row left pending would be sent again now
        assert len(_requests(receiver, "data_drift")) == 1, "a graceful restart doubled the notification"

        # A crash at the same moment: at-least-once, and the repeat carries the same Idempotency-Key.
        _evaluate(url, name, "concept_drift")
        wait_for(lambda: _requests(receiver, "concept_drift"), 10, "the second notification", proc)
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(10)
        proc, url = start("third")
        wait_for(lambda: rows(monitor_db, "SELECT id FROM alert_deliveries WHERE receiver = 'webhook' "
                                          "AND kind = 'firing' AND status = 'pending'") == [], 30,
                 "the crashed worker's row to be delivered", proc)
        crashed = _requests(receiver, "concept_drift")
        keys = {r.headers.get("Idempotency-Key") for r in crashed}
        assert len(keys) == 1 and 1 <= len(crashed) <= 2
        print(f"\nSIGTERM mid-send: exited in {stop_seconds:.1f} s, notification recorded sent, "
              f"{len(_requests(receiver, 'data_drift')) - 1} duplicate(s) after the graceful restart; "
              f"SIGKILL mid-send: {len(crashed)} request(s), one Idempotency-Key")
    finally:
        proc.stop()
        receiver.stop()
