"""Talking to the tracking server: an up-front health check, the actor, the code version."""

from __future__ import annotations

import getpass
import socket
import subprocess
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from trainer.errors import TrackingUnreachable

REPO = Path(__file__).resolve().parents[1]


def check_reachable(tracking_uri: str, timeout: float = 3.0) -> None:
    """GET <uri>/health within `timeout` seconds, or raise TrackingUnreachable (exit 3).

    Non-HTTP URIs (a local folder, sqlite:///...) have nothing to probe and pass.
    """
    scheme = urlparse(tracking_uri).scheme
    if scheme not in ("http", "https"):
        return
    url = tracking_uri.rstrip("/") + "/health"
    todo = "start it (make up) or set MLFLOW_TRACKING_URI to the tracking server's URL"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) checked above
            if resp.status == 200:
                return
            raise TrackingUnreachable(
                f"tracking server at {tracking_uri} answered {resp.status} on /health", todo)
    except urllib.error.HTTPError as exc:
        raise TrackingUnreachable(f"tracking server at {tracking_uri} answered {exc.code} on /health",
                                  todo) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnreachable(f"tracking server unreachable at {tracking_uri} ({reason})", todo) from exc


def actor(configured: str | None = None) -> str:
    """Who moves aliases: TRAINER_ACTOR, else user@host."""
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@cache
def code_version() -> str:
    """`git describe --always --dirty` of the repository, else the installed package version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=REPO,
                             capture_output=True, text=True, timeout=5, check=True)
        if out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"driftline-{version('driftline')}"
    except PackageNotFoundError:
        return "unknown"
