"""The seed's data scenarios: reference, data drift and concept drift.

One source of truth for the trainer, the monitor's simulated source and the benchmarks.
Defaults follow the course's data_util.py: 100 rows, X ~ U(0, 100)^2, y = x0 + N(0, 5),
an 80/20 split with seed 42; data drift shifts both features by +25, concept drift adds
+10 to the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = ("x0", "x1")
TARGET = "y"
ScenarioName = Literal["clean", "data_drift", "concept_drift"]
SCENARIOS: tuple[ScenarioName, ...] = ("clean", "data_drift", "concept_drift")


@dataclass(frozen=True)
class ScenarioParams:
    rows: int = 100
    seed: int = 42
    low: float = 0.0
    high: float = 100.0
    noise_sd: float = 5.0
    data_shift: float = 25.0
    concept_offset: float = 10.0


def make_batch(
    scenario: ScenarioName = "clean", params: ScenarioParams | None = None, **overrides: float
) -> pd.DataFrame:
    """Rows of the named scenario as a frame with columns x0, x1, y."""
    p = params or ScenarioParams()
    if overrides:
        p = ScenarioParams(**{**p.__dict__, **overrides})
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if p.rows < 1:
        raise ValueError(f"rows must be at least 1, got {p.rows}")
    rng = np.random.default_rng(p.seed)
    x = rng.uniform(p.low, p.high, size=(int(p.rows), len(FEATURES)))
    if scenario == "data_drift":
        x = x + p.data_shift
    noise_mean = p.concept_offset if scenario == "concept_drift" else 0.0
    y = x[:, 0] + rng.normal(noise_mean, p.noise_sd, size=int(p.rows))
    frame = pd.DataFrame(x, columns=list(FEATURES))
    frame[TARGET] = y
    return frame


def train_test_split(
    frame: pd.DataFrame, test_size: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shuffled split; the hold-out share is rounded up so tiny tables keep a test row."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    if len(frame) < 2:
        raise ValueError(f"need at least 2 rows to split into train and test, got {len(frame)}")
    order = np.random.default_rng(seed).permutation(len(frame))
    n_test = max(1, int(np.ceil(len(frame) * test_size)))
    test_idx, train_idx = order[:n_test], order[n_test:]
    return (
        frame.iloc[train_idx].reset_index(drop=True),
        frame.iloc[test_idx].reset_index(drop=True),
    )
