"""Settings: defaults for local mode, refusal of weak secrets elsewhere, one clear line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.settings import ConfigError, load_settings
from tests.services.tracking import REPO, clean_env


def test_local_mode_defaults_to_sqlite_under_the_data_dir_and_simulated_source(tmp_path):
    settings = load_settings({"DRIFTLINE_MODE": "local", "DRIFTLINE_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'monitor.db'}"
    assert settings.port == 8000
    assert (settings.default_source, settings.champion_alias) == ("simulated", "champion")
    assert settings.max_batch_bytes == 10 * 1024 * 1024


def test_production_refuses_a_missing_token_naming_the_variable():
    with pytest.raises(ConfigError, match="MONITOR_API_TOKEN"):
        load_settings({"DRIFTLINE_MODE": "production",
                       "MONITOR_DATABASE_URL": "postgresql+psycopg2://u:p@db/monitor"})


def test_secrets_never_appear_in_the_settings_repr():
    settings = load_settings({"ALERT_SLACK_WEBHOOK_URL": "https://hooks.example/very-secret",
                              "MONITOR_API_TOKEN": "another-very-secret-token"})
    assert "very-secret" not in repr(settings)
    assert settings.alert_failure_threshold == 3 and settings.alert_repeat_interval_seconds == 14400


def test_cli_prints_one_line_and_exits_2_on_bad_settings():
    env = clean_env(DRIFTLINE_MODE="production", MONITOR_PORT="not-a-port")
    proc = subprocess.run([sys.executable, "-m", "monitor", "migrate"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "MONITOR_PORT" in proc.stderr


def test_joint_test_settings_sit_under_the_config_files_drift_settings(tmp_path):
    from monitor.settings import load_config_file

    settings = load_settings({"MONITOR_JOINT_TEST": "energy", "MONITOR_JOINT_MAX_ROWS": "500",
                              "MONITOR_PERMUTATIONS": "199", "MONITOR_PERMUTATION_SEED": "7"})
    defaults = settings.drift_defaults()
    assert defaults == {"joint_test": "energy", "joint_max_rows": 500, "permutations": 199,
                        "permutation_seed": 7}
    assert load_config_file(None, defaults).drift_settings("any") == defaults
    path = tmp_path / "monitor.yaml"
    path.write_text("drift: {permutations: 99}\nmodels:\n  - name: m\n    drift: {joint_test: none}\n")
    config = load_config_file(path, defaults)
    assert config.drift_settings("m") == {**defaults, "permutations": 99, "joint_test": "none"}
    assert config.drift_settings("other")["joint_test"] == "energy"
    assert load_settings({}).drift_defaults() == {}  # unset: DriftConfig's own defaults, same profile keys


@pytest.mark.parametrize(("name", "value"), [("MONITOR_JOINT_TEST", "mmd"), ("MONITOR_PERMUTATIONS", "0"),
                                             ("MONITOR_JOINT_MAX_ROWS", "100000"),
                                             ("MONITOR_PERMUTATION_SEED", "-1")])
def test_bad_joint_test_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
