"""`--autolog`: mlflow.autolog() adds its training metrics; the model is still registered and promoted."""

from __future__ import annotations

from trainer import data, registry, training
from trainer.candidates import lasso_grid


def test_autolog_run_is_registered_and_becomes_champion(client, names):
    name = names("auto")
    report = training.train(client, data.generated(), lasso_grid((0.5,), name), experiment=names("exp"),
                            autolog=True)
    run = client.get_run(report.results[0].run_id)
    assert "training_mean_squared_error" in run.data.metrics  # written by autolog
    assert "mean_squared_error" in run.data.metrics  # the hold-out metric, written by the trainer
    assert registry.alias_version(client, name, "champion").version == "1"
