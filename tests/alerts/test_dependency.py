"""``dependency_down`` from probes: the lifecycle (blip, threshold, resolve), who is told, and the
probes against a real S3 server and a real Alertmanager (down = the same probe aimed at a closed
port; the shared servers cannot be stopped). Process-level outages: tests/monitor/test_outages.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from monitor.alerts.delivery import deliver_pending
from monitor.alerts.dependency import DependencyAlerts, dependency_labels
from monitor.alerts.engine import AlertEngine
from monitor.alerts.models import Alert, AlertEpisode, Delivery
from monitor.alerts.rules import fingerprint
from monitor.dependencies import DependencyWatch, Probe, http_probe, s3_probe
from tests.alerts.conftest import alert_config
from tests.services.process import free_port

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
DOWN_AFTER = timedelta(seconds=120)


def _deliveries(sessions, dependency: str) -> list[tuple[str, str]]:
    fp = fingerprint(dependency_labels(dependency))
    with sessions() as session:
        return [(d.receiver, d.kind) for d in session.scalars(
            sa.select(Delivery).where(Delivery.fingerprint == fp).order_by(Delivery.id))]


def _state(sessions, dependency: str) -> str | None:
    fp = fingerprint(dependency_labels(dependency))
    with sessions() as session:
        return session.scalar(sa.select(Alert.state).where(Alert.fingerprint == fp))


def test_a_blip_shorter_than_the_threshold_notifies_nobody(sessions, receiver):
    alerts = DependencyAlerts(AlertEngine(alert_config(receiver)), DOWN_AFTER)
    with sessions() as session, session.begin():
        assert alerts.observe(session, "tracking", "connection refused", T0) == "pending"
    with sessions() as session, session.begin():
        assert alerts.observe(session, "tracking", "connection refused", T0 + timedelta(seconds=119)) \
            == "pending"
    with sessions() as session, session.begin():
        assert alerts.observe(session, "tracking", None, T0 + timedelta(seconds=125)) is None
    assert _state(sessions, "tracking") == "inactive" and _deliveries(sessions, "tracking") == []


def test_an_outage_past_the_threshold_fires_once_and_resolves_with_one_episode(sessions, receiver):
    alerts = DependencyAlerts(AlertEngine(alert_config(receiver)), DOWN_AFTER)
    for seconds in (0, 60, 120, 180):
        with sessions() as session, session.begin():
            alerts.observe(session, "tracking", "connection refused", T0 + timedelta(seconds=seconds))
    assert _state(sessions, "tracking") == "firing"
    with sessions() as session, session.begin():
        assert alerts.observe(session, "tracking", None, T0 + timedelta(seconds=200)) == "resolved"
    assert _deliveries(sessions, "tracking") == [
        ("webhook", "firing"), ("slack", "firing"), ("log", "firing"),
        ("webhook", "resolved"), ("slack", "resolved"), ("log", "resolved")]
    with sessions() as session:
        episode = session.scalars(sa.select(AlertEpisode).where(
            AlertEpisode.fingerprint == fingerprint(dependency_labels("tracking")))).one()
        assert (episode.starts_at, episode.ends_at) == (T0, T0 + timedelta(seconds=200))
    stats = deliver_pending(sessions, alert_config(receiver), now=lambda: T0 + timedelta(seconds=201))
    assert stats.sent == 6
    bodies = receiver.bodies("/webhook")
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[0]["commonLabels"]["dependency"] == "tracking"
    assert "unreachable since 2026-05-01T08:00:00" in bodies[0]["commonAnnotations"]["summary"]


def test_a_receiver_is_not_told_about_its_own_outage(sessions, receiver):
    alerts = DependencyAlerts(AlertEngine(alert_config(receiver)), DOWN_AFTER)
    for seconds in (0, 130, 140):
        with sessions() as session, session.begin():
            alerts.observe(session, "webhook", "connection failed", T0 + timedelta(seconds=seconds))
    with sessions() as session, session.begin():
        alerts.observe(session, "webhook", None, T0 + timedelta(seconds=150))
    receivers = {r for r, _ in _deliveries(sessions, "webhook")}
    assert receivers == {"slack", "log"}


class _Inbox:
    def __init__(self, client) -> None:  # noqa: ANN001
        self._client = client

    def client(self):  # noqa: ANN201
        return self._client


def _s3_client(endpoint: str, server):  # noqa: ANN001, ANN202
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=server.access_key,
                        aws_secret_access_key=server.secret_key, region_name="us-east-1",
                        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))


def test_watch_probes_a_real_s3_inbox_and_alertmanager(sessions, receiver, s3_server, alertmanager):
    bucket = s3_server.make_bucket("inbox")
    closed = f"http://127.0.0.1:{free_port()}"
    target = SimpleNamespace(s3=closed, am=closed)
    probes = [Probe("s3_inbox", lambda: s3_probe(_Inbox(_s3_client(target.s3, s3_server)), [bucket])()),
              Probe("alertmanager", lambda: http_probe(f"{target.am}/-/healthy"))]
    recovered: list[str] = []
    watch = DependencyWatch(probes, sessions, DOWN_AFTER,
                            DependencyAlerts(AlertEngine(alert_config(receiver)), DOWN_AFTER),
                            on_recovered=recovered.append)
    results = watch.check(now=lambda: T0)
    assert results["s3_inbox"] and results["alertmanager"]
    assert _state(sessions, "s3_inbox") == "pending"
    watch.check(now=lambda: T0 + timedelta(seconds=121))
    assert _state(sessions, "s3_inbox") == _state(sessions, "alertmanager") == "firing"
    assert not watch.status()["s3_inbox"]["up"]

    target.s3, target.am = s3_server.endpoint_url, alertmanager.url
    assert watch.check(now=lambda: T0 + timedelta(seconds=130)) == {"s3_inbox": None, "alertmanager": None}
    assert _state(sessions, "s3_inbox") == _state(sessions, "alertmanager") == "resolved"
    assert sorted(recovered) == ["alertmanager", "s3_inbox"]
    assert watch.status()["s3_inbox"]["up"]
