"""The promotion test (monitor/sequential.py): its guarantees under continuous monitoring, simulated
(seeded; the full-size run is bench/promotion_test.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor import sequential

ALPHA = 0.05


def run(champion: np.ndarray, challenger: np.ndarray) -> tuple[str, int]:
    state = sequential.TestState()
    for a, b in zip(champion, challenger, strict=True):
        state = sequential.update(state, sequential.relative_gain(float(a), float(b)))
        outcome = sequential.decide(state, ALPHA, min_batches=3)
        if outcome != sequential.CONTINUE:
            return outcome, state.batches
    return sequential.CONTINUE, state.batches


def streams(rng: np.random.Generator, n: int, looks: int, sd_champion: float, sd_challenger: float,
            shift: float = 0.0, df: float | None = None):
    for _ in range(n):
        shape = (looks, 50)
        if df is None:
            a = rng.normal(shift, sd_champion, shape)
            b = rng.normal(0, sd_challenger, shape)
        else:
            a, b = sd_champion * rng.standard_t(df, shape), sd_challenger * rng.standard_t(df, shape)
        yield (a ** 2).mean(axis=1), (b ** 2).mean(axis=1)


@pytest.mark.parametrize("df", [None, 2.0], ids=["normal", "heavy tails (t2)"])
def test_an_equal_challenger_is_promoted_at_most_alpha_of_the_time_looking_after_every_batch(df):
    rng = np.random.default_rng(20261202)
    outcomes = [run(a, b)[0] for a, b in streams(rng, 400, 200, 5.0, 5.0, df=df)]
    promoted = outcomes.count(sequential.BETTER) / len(outcomes)
    # 400 streams x 200 looks; the bound is alpha, the binomial sd at 5 % is 1.1 %.
    assert promoted <= ALPHA


def test_a_worse_challenger_is_never_promoted_and_is_called_worse():
    rng = np.random.default_rng(7)
    outcomes = [run(a, b)[0] for a, b in streams(rng, 200, 200, 5.0, 5.5)]
    assert sequential.BETTER not in outcomes
    assert outcomes.count(sequential.WORSE) / len(outcomes) > 0.9


def test_a_clearly_better_challenger_is_promoted_within_a_dozen_batches():
    rng = np.random.default_rng(11)  # the seed's concept drift: old champion off by +10
    results = [run(a, b) for a, b in streams(rng, 200, 60, 5.0, 5.0, shift=10.0)]
    assert all(outcome == sequential.BETTER for outcome, _ in results)
    assert max(n for _, n in results) <= 12


def test_state_round_trips_and_bets_use_only_earlier_batches():
    state = sequential.TestState()
    assert sequential.bets(state) == (0.0, 0.0)  # no evidence yet: no bet
    for gain in (0.5, 0.6, -0.2):
        state = sequential.update(state, gain)
    again = sequential.TestState.from_dict(state.to_dict())
    assert again == state
    # A bet placed before seeing r cannot depend on r: same bets whatever comes next.
    assert sequential.bets(again) == sequential.bets(state)
    assert math.isclose(state.mean_gain, 0.3)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        sequential.relative_gain(-1.0, 1.0)
    with pytest.raises(ValueError):
        sequential.update(sequential.TestState(), 1.5)
    with pytest.raises(ValueError):
        sequential.threshold(0.0)
    assert sequential.relative_gain(0.0, 0.0) == 0.0
