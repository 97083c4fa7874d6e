"""A scheduled round's work batched per claim batch, on real PostgreSQL and MLflow: one look-up of the
stored evaluations for the batch's units (each new evaluation skips its own), and the challengers
read from the round's registry listing (no tracking call per model). Exactly once per (model, slot)
still holds when the batch's look-up is stale: the unique key answers with the stored row."""

from __future__ import annotations

from monitor.sources.simulated import slot_batch
from monitor.work_units import Unit
from tests.monitor.helpers import register_model
from tests.monitor.processes import rows


def _config(tmp_path, *names: str):
    path = tmp_path / "monitor.yaml"
    path.write_text("discover: false\nmodels:\n" + "".join(f"  - name: {n}\n" for n in names))
    return path


def test_a_stale_unseen_hint_still_stores_each_model_and_slot_once(make_app, champion, tmp_path, monitor_db):
    config = _config(tmp_path, champion)
    first, second = (make_app(MONITOR_CONFIG_FILE=config, MONITOR_SIMULATED_ROWS="500")
                     .extensions["driftline"] for _ in range(2))
    unit = Unit(0, 41, champion, "1")
    assert second.scheduler._stored_simulated([unit]) == set()  # looked before the other stored it

    done = first.scheduler.run_round(41)  # claims the slot's unit (PostgreSQL) and evaluates it
    assert [(o.status, o.duplicate) for o in done] == [("ok", False)]
    assert second.scheduler._stored_simulated([unit]) == {(champion, "sim-41")}
    assert second.scheduler.run_round(41) == []  # the unit is done: nothing left to claim

    # The other replica acts on its stale answer (a lease that ran out while it evaluated): the
    # store's unique key catches it and answers with the stored evaluation.
    again = second.service.evaluate(champion, slot_batch(41, second.config.scenarios, 500), resolved="1",
                                    unseen=True)
    assert again.duplicate and again.evaluation_id == done[0].evaluation_id
    assert rows(monitor_db, "SELECT count(*) FROM evaluations WHERE model_name = :n AND batch_id = 'sim-41'",
                n=champion)[0][0] == 1
    assert rows(monitor_db, "SELECT count(*) FROM monitoring_runs r JOIN evaluations e "
                            "ON e.id = r.evaluation_id WHERE e.model_name = :n", n=champion)[0][0] == 1
    assert rows(monitor_db, "SELECT status, evaluations FROM work_claims WHERE slot = 41") == [("done", 1)]


def test_a_round_reads_challengers_from_its_listing_not_one_call_per_model(make_app, mlflow_client,
                                                                           unique_name, tmp_path, monitor_db):
    names = [unique_name("listed") for _ in range(3)]
    for name in names:
        register_model(mlflow_client, name)
    # The first model gets a challenger (version 2): scored on the round's batch from the listing.
    register_model(mlflow_client, names[0], offset=0.5, kind="shifted", alias="challenger")
    monitor = make_app(MONITOR_CONFIG_FILE=_config(tmp_path, *names),
                       MONITOR_SIMULATED_ROWS="500").extensions["driftline"]
    registry = monitor.service.registry
    asked: list[str] = []
    read_one = registry.model_aliases

    def counted(name: str):  # noqa: ANN202 - a spy around the real call
        asked.append(name)
        return read_one(name)

    registry.model_aliases = counted
    done = monitor.scheduler.run_round(52)
    assert sorted(o.status for o in done) == ["ok", "ok", "ok"]
    assert asked == []  # one listing for the round, no per-model registry read
    scored = rows(monitor_db, "SELECT model_name, version, alias FROM challenger_scores")
    assert scored == [(names[0], "2", "challenger")]
