"""Who may read: in production the dashboard and the read API need the team's MLflow login (HTTP
basic, checked against the tracking server's basic-auth) or a bearer token; health stays open.

- ``/healthz``, ``/readyz``: always open (orchestrators probe them). ``/metrics``: open, or
  ``Authorization: Bearer <MONITOR_METRICS_TOKEN>`` when that is set (Prometheus' bearer token).
- Everything else: ``Authorization: Bearer`` with ``MONITOR_READ_TOKEN`` or ``MONITOR_API_TOKEN``, or
  ``Authorization: Basic`` with credentials the tracking server accepts. They are checked with one
  authenticated request to its REST API (a 1-result registered-model search: any team member may
  make it) and a success is cached for ``MONITOR_READ_AUTH_CACHE_SECONDS`` under a salted hash of
  the pair (the password itself is never kept, never logged).
- Local mode stays open unless ``MONITOR_READ_TOKEN`` is set.

Writes still need the API token as a bearer header (``monitor.api.require_token``): a browser never
adds that header by itself, so a cross-site form cannot write with the team login the browser
remembers (CSRF), and the dashboard's own forms send the token from JavaScript.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
CHECK_PATH = "/api/2.0/mlflow/registered-models/search"
REALM = 'Basic realm="Driftline monitor (MLflow login)", charset="UTF-8"'


class TrackingLogin:
    """Checks team credentials against MLflow's basic-auth; successes cached briefly."""

    def __init__(self, tracking_uri: str, cache_seconds: float, timeout: float = 5.0) -> None:
        self.url = tracking_uri.rstrip("/") + CHECK_PATH
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._salt = os.urandom(16)
        self._ok: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self.checks = 0  # requests made to the tracking server (tests, metrics)

    def _key(self, username: str, password: str) -> bytes:
        return hashlib.sha256(self._salt + username.encode() + b"\0" + password.encode()).digest()

    def verify(self, username: str, password: str) -> bool | None:
        """True/False, or None when the tracking server cannot say (down)."""
        key, now = self._key(username, password), time.monotonic()
        with self._lock:
            if self._ok.get(key, 0.0) > now:
                return True
        self.checks += 1
        try:
            resp = requests.get(self.url, params={"max_results": 1}, auth=(username, password),
                                timeout=self.timeout)
        except requests.RequestException:
            return None
        if resp.status_code in (401, 403):
            return False
        if resp.status_code != 200:
            return None
        with self._lock:
            if len(self._ok) > 10_000:
                self._ok.clear()
            self._ok[key] = now + self.cache_seconds
        return True


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _basic() -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def _refuse(message: str, status: int = 401) -> tuple[Response, int]:
    resp = jsonify(error=message, detail="log in with your MLflow team account (HTTP basic), or send "
                                         "'Authorization: Bearer <MONITOR_READ_TOKEN>'")
    if status == 401:
        resp.headers["WWW-Authenticate"] = REALM
    return resp, status


def install_read_gate(app: Flask, settings: Any) -> TrackingLogin | None:
    """Require a login for reads in production mode (or whenever a read token is set)."""
    read_token = settings.read_token.get_secret_value() if settings.read_token else None
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if settings.mode != "production" and read_token is None and metrics_token is None:
        return None
    login = TrackingLogin(settings.tracking_uri, settings.read_auth_cache_seconds)
    api_token = settings.token()
    gated = settings.mode == "production" or read_token is not None

    @app.before_request
    def _require_login() -> Any:
        path = request.path
        if path in OPEN_PATHS:
            return None
        bearer = _bearer()
        if path == "/metrics":
            if metrics_token is None or (bearer is not None and _same(bearer, metrics_token)):
                return None
            return _refuse("/metrics needs 'Authorization: Bearer <MONITOR_METRICS_TOKEN>'")
        if not gated:
            return None
        if bearer is not None:
            if _same(bearer, read_token) or _same(bearer, api_token):
                return None
            return _refuse("wrong bearer token")
        credentials = _basic()
        if credentials is None:
            return _refuse("login required")
        verdict = login.verify(*credentials)
        if verdict is None:
            return _refuse("cannot check the login: the tracking server does not answer; retry, or use "
                           "MONITOR_READ_TOKEN", 503)
        if not verdict:
            return _refuse("the tracking server refused this login")
        return None

    return login
