"""Champion selection: the margin, explicit promote, rollback and the alias history."""

from __future__ import annotations

import pytest

from trainer import cli, data, registry, training
from trainer.candidates import custom_model

# On the course data, f(x) = x0 has hold-out MSE ~20 and f(x) = x0 + 3 about 50 % more.
WORSE, BETTER = 3.0, 0.0


@pytest.fixture(scope="module")
def dataset():
    return data.generated()


def _train(client, dataset, name, experiment, offset, margin):
    return training.train(client, dataset, [custom_model(offset, name)], experiment=experiment,
                          margin=margin, actor="pytest")


def _alias(client, name, alias):
    found = registry.alias_version(client, name, alias)
    return found.version if found else None


@pytest.fixture(scope="module")
def two_versions(client, names, dataset):
    """v1 = worse (offset 3) as champion, v2 = better (offset 0) registered but kept out by a 90 % margin."""
    name, experiment = names("promo"), names("exp")
    _train(client, dataset, name, experiment, WORSE, margin=0.01)
    report = _train(client, dataset, name, experiment, BETTER, margin=0.9)
    return name, experiment, report


def test_candidate_not_beating_champion_by_margin_leaves_champion(client, two_versions):
    name, _, report = two_versions
    (decision,) = report.decisions
    assert not decision.moved and "does not beat" in decision.reason
    assert _alias(client, name, "champion") == "1"
    assert _alias(client, name, "previous") is None


def test_candidate_beating_champion_by_margin_becomes_champion_and_old_one_previous(
        client, two_versions, dataset):
    name, experiment, _ = two_versions
    report = _train(client, dataset, name, experiment, BETTER, margin=0.01)
    assert report.results[0].status == "reused"  # the same candidate, not a new version
    assert report.decisions[0].moved
    assert (_alias(client, name, "champion"), _alias(client, name, "previous")) == ("2", "1")
    v2 = client.get_model_version(name, "2")
    assert "beats champion v1" in v2.tags["driftline.promotion_reason"]
    assert [(h["alias"], h["version"]) for h in registry.alias_history(client, name)][-2:] == [
        ("champion", "2"), ("previous", "1")]


def test_rollback_restores_previous_champion_and_train_does_not_undo_it(
        client, two_versions, dataset, capsys):
    name, experiment, _ = two_versions
    assert _alias(client, name, "champion") == "2"
    assert cli.main(["rollback", "--model", name, "--reason", "bad in production"]) == 0
    assert (_alias(client, name, "champion"), _alias(client, name, "previous")) == ("1", "2")
    assert "champion -> v1" in capsys.readouterr().out
    history = registry.alias_history(client, name)
    assert history[-2]["reason"] == "bad in production" and history[-2]["by"] == "pytest"
    report = _train(client, dataset, name, experiment, BETTER, margin=0.01)
    assert not report.decisions[0].moved and "rolled back" in report.decisions[0].reason
    assert _alias(client, name, "champion") == "1"


def test_promote_without_version_picks_best_holdout_mse(client, two_versions, capsys):
    name, _, _ = two_versions
    assert cli.main(["promote", "--model", name]) == 0
    assert _alias(client, name, "champion") == "2"
    assert "champion -> v2" in capsys.readouterr().out
    assert "driftline.rolled_back_at" not in client.get_model_version(name, "2").tags


def test_promote_unknown_model_is_bad_input(client, names, capsys):
    assert cli.main(["promote", "--model", names("nothing")]) == 2
    assert capsys.readouterr().err.startswith("trainer: error: no registered model named")


def test_rollback_without_previous_is_bad_input(client, names, dataset, capsys):
    name = names("solo")
    _train(client, dataset, name, names("exp"), BETTER, margin=0.01)
    assert cli.main(["rollback", "--model", name]) == 2
    assert "no 'previous' alias" in capsys.readouterr().err
    assert _alias(client, name, "champion") == "1"
