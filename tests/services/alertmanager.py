"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) routing everything to a webhook.

Tiny group_wait/group_interval so notifications leave within about a second; clustering off.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services.process import ManagedProcess, free_port, http_ok

BINARY = "/usr/bin/prometheus-alertmanager"

CONFIG = """\
route:
  receiver: webhook
  group_by: ['alertname', 'model']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
"""


@dataclass
class Alertmanager:
    url: str
    process: ManagedProcess

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.process.stop()


def binary() -> str:
    found = shutil.which("prometheus-alertmanager") or BINARY
    if not Path(found).exists():
        raise RuntimeError("prometheus-alertmanager not found: apt-get install prometheus-alertmanager")
    return found


def start_alertmanager(workdir: Path, webhook_url: str) -> Alertmanager:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG.format(webhook_url=webhook_url))
    port = free_port()
    argv = [binary(), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.path={workdir / 'data'}", "--cluster.listen-address=", "--log.level=info"]
    proc = ManagedProcess("alertmanager", argv, workdir / "alertmanager.log").start()
    server = Alertmanager(f"http://127.0.0.1:{port}", proc)
    proc.wait_until(lambda: http_ok(f"{server.url}/-/ready"), timeout=30, what="ready")
    return server
