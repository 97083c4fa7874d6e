"""A new champion version ends the old version's open alerts, on PostgreSQL and on SQLite; an
evaluation that resolved no version ends nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from monitor.alerts.engine import AlertEngine
from monitor.alerts.models import Alert
from monitor.db import make_engine, make_session_factory, utcnow
from monitor.migrate import upgrade
from monitor.models import Evaluation
from tests.alerts.conftest import alert_config, verdict


@pytest.fixture(params=["postgres", "sqlite"])
def database(request, make_database, tmp_path) -> str:
    url = make_database("newversion") if request.param == "postgres" else f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    return url


def test_a_new_version_ends_the_old_versions_alerts_and_an_unknown_one_does_not(database, unique_name):
    engine = make_engine(database)
    sessions = make_session_factory(engine)
    alerts = AlertEngine(alert_config())
    model, other = unique_name(), unique_name()

    def record(name: str, kind: str, version: str) -> None:
        with sessions() as session, session.begin():
            row = Evaluation(model_name=name, model_version=version, alias="champion",
                             batch_id=f"b-{unique_name()}", source="push", scenario=kind,
                             started_at=utcnow(), finished_at=utcnow(), **verdict(kind))
            session.add(row)
            session.flush()
            alerts.on_evaluation(session, row)

    def states(name: str) -> dict[tuple[str, str], str]:
        with sessions() as session:
            rows = session.scalars(sa.select(Alert).where(Alert.model_name == name)).all()
            return {(a.model_version, a.alertname): a.state for a in rows}

    try:
        record(model, "data_drift", "1")
        record(other, "data_drift", "1")  # another model's alert: untouched by this model's versions
        assert states(model) == {("1", "data_drift"): "firing"}

        record(model, "failed", "unknown")  # resolved no version: ends nothing
        assert states(model)[("1", "data_drift")] == "firing"

        record(model, "clean", "2")
        assert states(model)[("1", "data_drift")] == "resolved"
        assert states(other) == {("1", "data_drift"): "firing"}
        with sessions() as session:
            ended = session.scalars(sa.select(Alert).where(Alert.model_name == model,
                                                           Alert.model_version == "1")).one()
            assert ended.annotations["resolved_by"] == "version 2 replaced version 1"
    finally:
        engine.dispose()
