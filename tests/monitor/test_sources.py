"""Batch sources: the S3 inbox evaluates each file once across restarts; simulated slots cycle scenarios."""

from __future__ import annotations

import pandas as pd

from monitor.settings import DEFAULT_CYCLE, MonitorSettings
from monitor.sources.simulated import slot_batch
from tests.monitor.helpers import reference_split


def test_s3_inbox_file_is_evaluated_exactly_once_across_restarts(make_app, champion, s3_server, tmp_path):
    bucket = s3_server.make_bucket("inbox")
    s3_server.client().put_object(Bucket=bucket, Key="batches/001.csv",
                                  Body=reference_split()[1].to_csv(index=False).encode())
    config = tmp_path / "monitor.yaml"
    config.write_text(f"discover: false\nmodels:\n  - name: {champion}\n    source: s3\n"
                      f"    s3_inbox: s3://{bucket}/batches/\n")
    wanted = ("AWS_ACCESS", "AWS_SECRET", "MLFLOW_S3")
    s3_env = {k: v for k, v in s3_server.env.items() if k.startswith(wanted)}
    settings = {"MONITOR_CONFIG_FILE": str(config), **s3_env}
    first = make_app(**settings).extensions["driftline"].scheduler
    assert [o.status for o in first.run_round(1)] == ["ok"]
    assert first.run_round(2) == []
    restarted = make_app(**settings).extensions["driftline"].scheduler  # a new process: nothing in memory
    assert restarted.run_round(3) == []
    s3_server.client().put_object(Bucket=bucket, Key="batches/002.parquet",
                                  Body=_parquet(reference_split(seed=5)[1]))
    new_files = [o.result["batch_id"].split("/")[-1].split("@")[0] for o in restarted.run_round(4)]
    assert new_files == ["002.parquet"]


def test_simulated_slots_cycle_through_clean_data_drift_and_concept_drift():
    cycle = ("clean", "clean", "data_drift", "data_drift", "clean", "clean", "concept_drift", "concept_drift")
    batches = [slot_batch(slot, cycle, 50) for slot in range(8)]
    assert [b.scenario for b in batches] == list(cycle)
    assert slot_batch(5, cycle, 50).batch_id == batches[5].batch_id == "sim-5"  # same slot, same id
    assert slot_batch(5, cycle, 50).frame.equals(batches[5].frame)
    # Counted from a start slot: the same slot id and rows, the cycle's position shifted.
    shifted = slot_batch(1005, cycle, 50, start=1000)
    assert (shifted.batch_id, shifted.scenario) == ("sim-1005", cycle[5])


def runs(cycle: tuple[str, ...]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for scenario in cycle:
        if out and out[-1][0] == scenario:
            out[-1] = (scenario, out[-1][1] + 1)
        else:
            out.append((scenario, 1))
    return out


def test_the_demo_cycle_lets_every_regime_switch_close_the_loop():
    """Clean, a data-drift episode, then concept drift that persists, then the old world again; each
    regime outlasts the retraining cool-down at the default interval, so the switch back is retrained
    too (docs/promotion.md "The demo's timeline")."""
    assert runs(DEFAULT_CYCLE) == [("clean", 3), ("data_drift", 2), ("clean", 3), ("concept_drift", 210),
                                   ("clean", 202)]
    settings = MonitorSettings(_env_file=None)
    cooldown_slots = settings.retrain_cooldown_seconds / settings.interval
    # A loop takes ~15 slots (alert, retraining job, ~9 paired batches, promotion): a regime must
    # outlast the cool-down since the last switch's request by that much.
    old_world = 202 + 8
    assert min(210, old_world) >= cooldown_slots + 15


def test_the_simulated_cycle_starts_at_the_stacks_first_round_across_restarts(make_app, champion, tmp_path):
    config = tmp_path / "monitor.yaml"
    config.write_text(f"discover: false\nmodels:\n  - name: {champion}\n    source: simulated\n")
    first = make_app(MONITOR_CONFIG_FILE=str(config)).extensions["driftline"].scheduler
    start = 7_777_777  # any wall-clock slot: the story opens with the cycle's first batch
    assert [o.result["scenario"] for o in first.run_round(start)] == [DEFAULT_CYCLE[0]]
    restarted = make_app(MONITOR_CONFIG_FILE=str(config)).extensions["driftline"].scheduler
    [outcome] = restarted.run_round(start + 3)  # a new process: the start comes from the database
    assert (outcome.result["batch_id"], outcome.result["scenario"]) == (f"sim-{start + 3}", "data_drift")
    assert restarted.cycle_start(start + 9) == start


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()
