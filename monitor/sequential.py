"""The promotion test: is the challenger's loss lower than the champion's, decided at any look?

Pure functions on plain data (no I/O, no clock); the state is a small dict the monitor stores in the
database after every batch, so a restart continues the same test. See docs/promotion.md.

Per labelled batch both models are scored on the same rows; the batch's *relative loss gain* is

    r = (L_champion - L_challenger) / (L_champion + L_challenger)      in [-1, 1]

(L = the batch's mean per-row loss; r = 0 when both are 0). r > 0: the challenger was better on this
batch. The null hypotheses are "E[r_t | earlier batches] <= 0 at every t" (challenger not better)
and ">= 0" (not worse). Two betting wealth processes (Waudby-Smith & Ramdas 2023, "Estimating means
of bounded random variables by betting") test them:

    K+_t = prod (1 + lam+_i r_i),  K-_t = prod (1 - lam-_i r_i),  lam_i in [0, c] chosen from r_<i

Each is a non-negative supermartingale under its null whatever the dependence between batches or the
rows' tails (r is bounded and the bets are predictable), so by Ville's inequality it ever reaches
1/alpha with probability <= alpha: the test may be looked at after every batch, forever. Each side is
one-sided at alpha on its own null: the error that matters, promoting a challenger that is not better,
has probability <= alpha; an equal challenger may also be called worse with probability <= alpha,
which only discards it.
Bets follow aGRAPA (the growth-rate-adaptive plug-in), truncated at c = 0.75.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

BETTER = "challenger_better"
WORSE = "challenger_worse"
CONTINUE = "continue"
MAX_BET = 0.75  # c: how much of its wealth a process may stake; < 1 keeps 1 - c > 0 for r = -1
PRIOR_VARIANCE = 0.25  # the variance prior of the bet's plug-in (one pseudo-batch at mean 0)


def relative_gain(champion_loss: float, challenger_loss: float) -> float:
    """The batch's relative loss gain of the challenger, in [-1, 1] (0 when both losses are 0)."""
    if not (math.isfinite(champion_loss) and math.isfinite(challenger_loss)):
        raise ValueError("batch losses must be finite")
    if champion_loss < 0 or challenger_loss < 0:
        raise ValueError("losses must be non-negative")
    total = champion_loss + challenger_loss
    return 0.0 if total == 0 else (champion_loss - challenger_loss) / total


@dataclass
class TestState:
    """Everything the test remembers between batches (JSON-safe)."""

    batches: int = 0
    sum_gain: float = 0.0  # sum of r
    sum_sq_dev: float = 0.0  # sum of (r_i - mean of r_<i incl. prior)^2: the plug-in variance
    log_wealth_better: float = 0.0
    log_wealth_worse: float = 0.0
    last_gain: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TestState:
        data = dict(data or {})
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def mean_gain(self) -> float | None:
        return self.sum_gain / self.batches if self.batches else None


def _plug_in(state: TestState) -> tuple[float, float]:
    """Mean and variance estimates from earlier batches only (what makes the bet predictable)."""
    mean = state.sum_gain / (state.batches + 1)
    variance = (PRIOR_VARIANCE + state.sum_sq_dev) / (state.batches + 1)
    return mean, variance


def bets(state: TestState) -> tuple[float, float]:
    """aGRAPA bets for the next batch: (on challenger better, on challenger worse)."""
    mean, variance = _plug_in(state)
    scale = variance + mean * mean
    better = min(MAX_BET, max(0.0, mean / scale))
    worse = min(MAX_BET, max(0.0, -mean / scale))
    return better, worse


def update(state: TestState, gain: float) -> TestState:
    """The state after one more batch with relative gain ``gain`` (a new object)."""
    if not -1.0 <= gain <= 1.0 or not math.isfinite(gain):
        raise ValueError(f"relative gain {gain!r} is outside [-1, 1]")
    better, worse = bets(state)
    mean, _ = _plug_in(state)
    return TestState(
        batches=state.batches + 1,
        sum_gain=state.sum_gain + gain,
        sum_sq_dev=state.sum_sq_dev + (gain - mean) ** 2,
        log_wealth_better=state.log_wealth_better + math.log1p(better * gain),
        log_wealth_worse=state.log_wealth_worse + math.log1p(-worse * gain),
        last_gain=gain,
    )


def threshold(alpha: float) -> float:
    """log of the wealth at which a side wins: 1/alpha (Ville's inequality)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha!r} must be in (0, 1)")
    return math.log(1.0 / alpha)


def decide(state: TestState, alpha: float = 0.05, min_batches: int = 1) -> str:
    """``challenger_better``, ``challenger_worse`` or ``continue``.

    ``min_batches`` only delays a decision (it can never make the test less valid)."""
    if state.batches < min_batches:
        return CONTINUE
    bar = threshold(alpha)
    if state.log_wealth_better >= bar:
        return BETTER
    if state.log_wealth_worse >= bar:
        return WORSE
    return CONTINUE


def evidence(state: TestState, alpha: float) -> dict[str, Any]:
    """What a person needs to judge the decision: batches, mean gain, wealth against the bar."""
    return {"batches": state.batches, "mean_relative_gain": state.mean_gain,
            "e_value_better": math.exp(min(state.log_wealth_better, 700.0)),
            "e_value_worse": math.exp(min(state.log_wealth_worse, 700.0)),
            "threshold": 1.0 / alpha, "alpha": alpha, "test": "betting e-process on relative batch gain"}
