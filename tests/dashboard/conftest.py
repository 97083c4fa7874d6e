"""A real monitor with real evaluations behind it, served on a loopback port, and a real Chromium.

Built once per session (the dashboard tests only read, except the silence test, which cleans up):

- ``drifting``: v1 champion, two clean batches and a data-drift batch (data_drift alert fires), then v2
  promoted (reason with HTML in it), a clean batch and a data-drift batch: the model is drifting.
- ``concept``: one evaluation whose stored report carries hand-made per-bin counts (in place of the
  drift engine's own), v1 then v2 champion, a concept-drift batch (concept_drift alert), a rollback to
  v1, a clean batch.
- ``evil``: a model whose *name* is HTML, one clean batch.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server

from tests.monitor.conftest import API_TOKEN, settings_for
from tests.services.receiver import Receiver as HttpReceiver
from tests.services.tracking import configure_team_client

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
EVIL_REASON = "<script>document.title='pwned'</script>promoted"


@dataclass
class Dashboard:
    url: str
    app: Any
    token: str
    drifting: str
    concept: str
    evil: str
    challenged: str = ""
    evaluations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    synthetic_id: int = 0

    def evaluation(self, model: str, scenario: str) -> dict[str, Any]:
        return [e for e in self.evaluations[model] if e["scenario"] == scenario][-1]


def _evaluate(client: Any, name: str, scenario: str, seed: int) -> dict[str, Any]:
    resp = client.post(
        f"/api/models/{quote(name, safe='')}/evaluate",
        json={"scenario": scenario, "rows": 100, "seed": seed},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _synthetic_report_row(model: str) -> Any:
    """An evaluation as the drift engine stores it, its per-bin counts replaced by hand-made ones on
    equal-frequency bins widened to the batch (``report["distributions"][column] = {edges,
    reference_counts, current_counts}``)."""
    import numpy as np

    from monitor.drift import DriftConfig, DriftDetector
    from monitor.models import Evaluation
    from seed_scenarios import ScenarioParams, make_batch

    ref = make_batch("clean", ScenarioParams(rows=100, seed=42))
    cur = make_batch("data_drift", ScenarioParams(rows=100, seed=9))
    ref_pred, cur_pred = ref["x0"].to_numpy(), cur["x0"].to_numpy()
    detector = DriftDetector(DriftConfig()).fit(
        ref[["x0", "x1"]], predictions=ref_pred, labels=ref["y"].to_numpy()
    )
    report = detector.score(cur[["x0", "x1"]], predictions=cur_pred, labels=cur["y"].to_numpy()).to_dict()
    distributions = {}
    for column, (r, c) in {
        "x0": (ref["x0"], cur["x0"]),
        "x1": (ref["x1"], cur["x1"]),
        "residuals": (ref["y"] - ref_pred, cur["y"] - cur_pred),
    }.items():
        edges = np.quantile(r, np.linspace(0, 1, 11))
        edges[0], edges[-1] = min(edges[0], c.min()), max(edges[-1], c.max())
        distributions[column] = {
            "edges": edges.tolist(),
            "reference_counts": np.histogram(r, edges)[0].tolist(),
            "current_counts": np.histogram(c, edges)[0].tolist(),
        }
    report["distributions"] = distributions
    perf = report["performance"]
    return Evaluation(
        model_name=model,
        model_version="1",
        alias="champion",
        batch_id=f"synthetic-{uuid.uuid4().hex}",
        source="manual",
        scenario="synthetic",
        status="ok",
        data_drift=report["data_drift"],
        concept_drift=report["concept_drift"],
        prediction_drift=report["prediction_drift"],
        drifted_features=report["drifted_features"],
        n_rows=100,
        mse=perf["mse"],
        mae=perf["mae"],
        baseline_mse=perf["baseline_mse"],
        baseline_mae=perf["baseline_mae"],
        report=report,
    )


@pytest.fixture(scope="session")
def dashboard(make_database, tracking_server) -> Iterator[Dashboard]:
    from mlflow.exceptions import MlflowException

    from monitor.app import create_app
    from monitor.migrate import upgrade
    from tests.monitor.helpers import register_model
    from trainer import registry as trainer_registry

    receiver = HttpReceiver().start()
    db_url = make_database("dashboard")
    upgrade(db_url)
    tag = uuid.uuid4().hex[:6]
    names = {
        "drifting": f"fraud-score-{tag}",
        "concept": f"demand-forecast-{tag}",
        "evil": f"<b onmouseover=alert(1)>evil<i>-model-{tag}",
        "challenged": f"sales-forecast-{tag}",
    }
    with pytest.MonkeyPatch.context() as mp:
        client = configure_team_client(mp, tracking_server.url)
        app = create_app(
            settings_for(
                db_url,
                tracking_server.url,
                MLFLOW_PUBLIC_URL="http://mlflow.test",
                MONITOR_PUBLIC_URL="http://monitor.test",
                ALERT_WEBHOOK_URL=f"{receiver.url}/webhook",
            )
        )
        http = app.test_client()
        evaluations: dict[str, list[dict[str, Any]]] = {n: [] for n in names.values()}

        def run(name: str, scenario: str, seed: int) -> None:
            evaluations[name].append(_evaluate(http, name, scenario, seed))

        def promote(name: str, version: str, reason: str) -> None:
            trainer_registry.make_champion(client, name, version, "ci@driftline", reason)

        drifting, concept, evil = names["drifting"], names["concept"], names["evil"]
        register_model(client, drifting, alias=None)
        base = client.get_model_version(drifting, "1")

        def add_version(name: str) -> str:
            """Another version (of this or another model) on the first one's logged model and run: cheap."""
            try:
                client.get_registered_model(name)
            except MlflowException:
                client.create_registered_model(name)
            version = client.create_model_version(
                name, base.source, run_id=base.run_id, model_id=base.source.removeprefix("models:/")
            ).version
            client.set_model_version_tag(name, version, "driftline.target", "y")
            client.set_model_version_tag(name, version, "driftline.features", "x0,x1")
            return str(version)

        # A push model's worker warms its champion at start (monitor/preload.py), which fits the
        # label-free estimator: these labelled batches then carry an estimate for the chart.
        service = app.extensions["driftline"].service
        promote(drifting, "1", "first champion")
        service.warm(drifting)
        run(drifting, "clean", 1)
        run(drifting, "clean", 2)
        run(drifting, "data_drift", 3)
        add_version(drifting)
        promote(drifting, "2", EVIL_REASON)
        service.warm(drifting)
        run(drifting, "clean", 4)
        run(drifting, "data_drift", 5)

        monitor = app.extensions["driftline"]
        with monitor.sessions.begin() as session:
            row = _synthetic_report_row(concept)
            session.add(row)
            session.flush()
            synthetic_id = row.id
        add_version(concept)
        promote(concept, "1", "first champion")
        run(concept, "clean", 6)
        add_version(concept)
        promote(concept, "2", "better hold-out mse")
        run(concept, "concept_drift", 7)
        trainer_registry.rollback(client, concept, "oncall@driftline", "concept drift after v2")
        run(concept, "clean", 8)

        add_version(evil)
        promote(evil, "1", "<img src=x onerror=alert(2)>")
        run(evil, "clean", 10)

        # ``challenged``: champion f(x) = x0 against a challenger f(x) = x0 + 10 on concept-drift batches
        # (the seed's +10): the challenger wins its paired test; the policy (notify) raises challenger_ready.
        challenged = names["challenged"]
        register_model(client, challenged, kind="custom", offset=0.0)
        register_model(client, challenged, kind="custom", offset=10.0, alias="challenger")
        for seed in range(20, 32):
            run(challenged, "concept_drift", seed)
        monitor.loop.executor.run_pending()

        app.extensions["driftline_alerts"].worker.run_cycle()  # deliver the queued notifications

        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Dashboard(
                url=f"http://127.0.0.1:{server.server_port}",
                app=app,
                token=API_TOKEN,
                drifting=drifting,
                concept=concept,
                evil=evil,
                challenged=challenged,
                evaluations=evaluations,
                synthetic_id=synthetic_id,
            )
        finally:
            server.shutdown()
            thread.join(timeout=5)
            monitor.close()
            receiver.stop()


class ConsoleLog:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on(
            "console", lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None
        )
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_log = ConsoleLog()
    page.console_log.attach(page)
    yield page
    context.close()
