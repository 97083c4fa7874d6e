"""A profile is plain data: saved and reloaded it scores identically."""

import json

import numpy as np
import pandas as pd
import pytest

from monitor.drift import DriftDetector, ReferenceProfile
from tests.drift.scenario_data import batch, fitted_detector, score


@pytest.fixture
def mixed_reference():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"num": rng.normal(size=300), "ties": rng.integers(0, 4, 300), "cat": rng.choice(["u", "v"], 300)}
    )
    frame.loc[:9, "num"] = np.nan
    return frame


def test_the_profile_keeps_sorted_values_bins_and_missing_counts(mixed_reference):
    profile = DriftDetector().fit(mixed_reference).profile_
    num = profile.features["num"]
    assert np.all(np.diff(num.sorted_values) >= 0)
    assert num.n_missing == 10 and num.n_finite == 290
    assert num.bin_counts.sum() == 290 and len(num.bin_counts) == 10
    assert profile.features["cat"].categories == ["u", "v"]


def test_bytes_round_trip_scores_identically():
    detector = fitted_detector()
    reloaded = DriftDetector.from_profile(ReferenceProfile.from_bytes(detector.profile_.to_bytes()))
    for scenario in ("clean", "data_drift", "concept_drift"):
        frame = batch(scenario, 100, seed=3)
        assert score(reloaded, frame).to_dict() == score(detector, frame).to_dict()


def test_json_round_trip_scores_identically(mixed_reference):
    detector = DriftDetector().fit(mixed_reference)
    text = json.dumps(detector.profile_.to_dict(), allow_nan=False)
    reloaded = DriftDetector.from_profile(ReferenceProfile.from_dict(json.loads(text)))
    current = mixed_reference.sample(frac=0.5, random_state=1)
    assert reloaded.score(current).to_dict() == detector.score(current).to_dict()


def test_bytes_load_without_pickle(mixed_reference):
    blob = DriftDetector().fit(mixed_reference).profile_.to_bytes()
    assert blob[:2] == b"PK"  # an npz (zip) archive; np.load runs with allow_pickle=False
    assert ReferenceProfile.from_bytes(blob).features["ties"].n_finite == 300


def test_something_that_is_not_a_profile_is_refused():
    with pytest.raises(ValueError, match="not a reference profile"):
        ReferenceProfile.from_dict({"format": "other"})
