"""`train` against the real tracking server: versions, champion, reference data, idempotence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainer import data, registry, training
from trainer.candidates import custom_model, lasso_grid
from trainer.reference import load_reference

ALPHAS = (0.1, 2.0)


@pytest.fixture(scope="module")
def trained(client, names):
    lasso, custom, experiment = names("lasso"), names("custom"), names("exp")
    dataset = data.generated()
    candidates = [*lasso_grid(ALPHAS, lasso), custom_model(0.0, custom)]
    lines: list[str] = []
    report = training.train(client, dataset, candidates, experiment=experiment, actor="pytest",
                            progress=lines.append)
    return {"lasso": lasso, "custom": custom, "experiment": experiment, "data": dataset,
            "candidates": candidates, "report": report, "lines": lines}


def _versions(client, name):
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def test_train_registers_every_candidate_under_its_model_name(client, trained):
    assert not trained["report"].failed
    assert _versions(client, trained["lasso"]) == [1, 2]
    assert _versions(client, trained["custom"]) == [1]
    assert len(trained["lines"]) == 3 and all("mse=" in line for line in trained["lines"])
    # Candidates are logged concurrently, yet versions and progress lines follow the candidate order.
    assert [r.version for r in trained["report"].results] == ["1", "2", "1"]
    assert [line.split("]")[0] for line in trained["lines"]] == ["[1/3", "[2/3", "[3/3"]
    assert "alpha=0.1" in trained["lines"][0] and "alpha=2.0" in trained["lines"][1]


def test_champion_points_at_the_best_holdout_mse(client, trained):
    for name in (trained["lasso"], trained["custom"]):
        versions = client.search_model_versions(f"name = '{name}'")
        best = min(versions, key=lambda v: float(v.tags[registry.TAG_HOLDOUT_MSE]))
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.version == best.version
        run_mse = client.get_run(champion.run_id).data.metrics["mean_squared_error"]
        assert float(champion.tags[registry.TAG_HOLDOUT_MSE]) == pytest.approx(run_mse)


def test_loaded_champion_predicts_one_row_per_input_row(client, trained):
    import mlflow

    holdout = trained["data"].holdout[["x0", "x1"]]
    for name in (trained["lasso"], trained["custom"]):
        model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        assert np.asarray(model.predict(holdout)).shape == (len(holdout),)
        assert np.asarray(model.predict(holdout.head(1))).shape == (1,)
    custom = mlflow.pyfunc.load_model(f"models:/{trained['custom']}@champion")
    np.testing.assert_allclose(custom.predict(holdout), holdout["x0"].to_numpy())


def test_reference_data_and_baseline_errors_rebuild_from_the_version_alone(client, trained):
    import mlflow

    name = trained["lasso"]
    version = client.get_model_version_by_alias(name, "champion").version
    ref = load_reference(client, name, version)
    pd.testing.assert_frame_equal(ref.train, trained["data"].train)
    pd.testing.assert_frame_equal(ref.holdout, trained["data"].holdout)
    assert ref.features == ["x0", "x1"] and ref.target == "y"
    assert all(ref.train.dtypes == "float64")
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    errors = ref.baseline_errors(model.predict(ref.holdout[ref.features]))
    assert float(np.mean(errors**2)) == pytest.approx(ref.metrics["mean_squared_error"])


def test_versions_and_runs_carry_the_contract_tags(client, trained):
    mv = client.get_model_version(trained["custom"], "1")
    run = client.get_run(mv.run_id)
    for tags in (mv.tags, run.data.tags):
        assert tags["driftline.target"] == "y"
        assert tags["driftline.features"] == "x0,x1"
        assert tags["driftline.data_fingerprint"] == trained["data"].fingerprint
        assert tags["driftline.code_version"]
    assert {"mean_squared_error", "mean_absolute_error", "r2"} <= set(run.data.metrics)
    contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
                for i in run.inputs.dataset_inputs}
    assert set(contexts) == {"training", "evaluation"}
    assert f"{run.info.artifact_uri}/reference/train.parquet" in contexts["training"].source
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id, "reference")}
    assert artifacts == {"reference/train.parquet", "reference/holdout.parquet"}


def test_champion_move_is_recorded_with_who_when_why(client, trained):
    name = trained["custom"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["driftline.promoted_by"] == "pytest"
    assert champion.tags["driftline.promoted_at"].startswith("20")
    assert "first champion" in champion.tags["driftline.promotion_reason"]
    history = registry.alias_history(client, name)
    assert [(h["alias"], h["version"], h["by"]) for h in history] == [("champion", "1", "pytest")]


def test_rerunning_with_same_data_and_config_changes_nothing(client, trained):
    names = (trained["lasso"], trained["custom"])
    before = {n: (_versions(client, n), client.get_model_version_by_alias(n, "champion").version,
                  registry.alias_history(client, n)) for n in names}
    report = training.train(client, data.generated(), trained["candidates"],
                            experiment=trained["experiment"], actor="pytest")
    assert {r.status for r in report.results} == {"reused"}
    assert not any(d.moved for d in report.decisions)
    after = {n: (_versions(client, n), client.get_model_version_by_alias(n, "champion").version,
                 registry.alias_history(client, n)) for n in names}
    assert after == before
