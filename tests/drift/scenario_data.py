"""Reference and batches of the seed scenarios with the identity model f(x) = x0 (shared by tests)."""

import pandas as pd

from monitor.drift import DriftConfig, DriftDetector
from seed_scenarios import FEATURES, TARGET, ScenarioParams, make_batch

REFERENCE_ROWS = 80


def batch(scenario: str, rows: int, seed: int) -> pd.DataFrame:
    return make_batch(scenario, ScenarioParams(rows=rows, seed=seed))


def fitted_detector(seed: int = 1000, config: DriftConfig | None = None) -> DriftDetector:
    reference = batch("clean", REFERENCE_ROWS, seed)
    return DriftDetector(config).fit(
        reference[list(FEATURES)], predictions=reference["x0"], labels=reference[TARGET]
    )


def score(detector: DriftDetector, frame: pd.DataFrame):
    return detector.score(frame[list(FEATURES)], predictions=frame["x0"], labels=frame[TARGET])
