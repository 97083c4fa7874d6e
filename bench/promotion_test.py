"""The promotion test (monitor/sequential.py) under continuous monitoring: error rate and power.

Many seeded streams of labelled batches; after EVERY batch the test is looked at (as the monitor
does), up to --looks batches per stream. Per scenario it reports the share of streams where the test
ever said "challenger better" (a promotion) or "challenger worse", and the batches it took.

Scenarios (rows per batch: --rows; losses are squared errors of regression residuals):
- equal (normal): both models' residuals N(0, 5), independent: promotions must be <= alpha;
- equal (heavy tails): residuals Student-t with 2 degrees of freedom (infinite variance) x 5;
- equal, correlated: the two models share most of their error (real models on the same rows do);
- equal, drifting: both degrade together across the stream (concept drift growing batch by batch);
- slightly worse: the challenger's residual sd is 5.25 instead of 5 (must not be promoted);
- skewed worse: the challenger wins 90 % of batches by a little, loses 10 % by a lot, and its mean
  batch loss is higher (the relative gain's mean is still <= 0 here: see docs/promotion.md);
- clearly better: the seed's concept drift (+10): the old champion's residuals N(10, 5), the retrained
  challenger's N(0, 5): how many batches until it is promoted;
- slightly better: challenger residual sd 4.5 instead of 5.

Prints a table and writes bench/results/promotion_test.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from monitor import sequential

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "promotion_test.json"


def batch_losses(scenario: str, rng: np.random.Generator, looks: int,
                 rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch mean squared errors of champion and challenger, shape (looks,) each."""
    shape = (looks, rows)
    if scenario == "equal (normal)":
        champion, challenger = rng.normal(0, 5, shape), rng.normal(0, 5, shape)
    elif scenario == "equal (heavy tails)":
        champion, challenger = 5 * rng.standard_t(2, shape), 5 * rng.standard_t(2, shape)
    elif scenario == "equal, correlated":
        shared = rng.normal(0, 5, shape)
        champion = shared + rng.normal(0, 1, shape)
        challenger = shared + rng.normal(0, 1, shape)
    elif scenario == "equal, drifting":
        grow = 1 + np.linspace(0, 3, looks)[:, None]
        champion, challenger = grow * rng.normal(0, 5, shape), grow * rng.normal(0, 5, shape)
    elif scenario == "slightly worse":
        champion, challenger = rng.normal(0, 5, shape), rng.normal(0, 5.25, shape)
    elif scenario == "skewed worse":
        champion = rng.normal(0, 5, shape)
        bad_batch = rng.random(looks)[:, None] < 0.10
        challenger = np.where(bad_batch, rng.normal(0, 15, shape), rng.normal(0, 4.8, shape))
    elif scenario == "clearly better":
        champion, challenger = rng.normal(10, 5, shape), rng.normal(0, 5, shape)
    elif scenario == "slightly better":
        champion, challenger = rng.normal(0, 5, shape), rng.normal(0, 4.5, shape)
    else:
        raise ValueError(scenario)
    return (champion ** 2).mean(axis=1), (challenger ** 2).mean(axis=1)


def run_stream(champion: np.ndarray, challenger: np.ndarray, alpha: float,
               min_batches: int) -> tuple[str, int]:
    """Feed one stream, looking after every batch; (outcome, batches used)."""
    state = sequential.TestState()
    for champion_loss, challenger_loss in zip(champion, challenger, strict=True):
        state = sequential.update(state, sequential.relative_gain(float(champion_loss),
                                                                  float(challenger_loss)))
        outcome = sequential.decide(state, alpha, min_batches)
        if outcome != sequential.CONTINUE:
            return outcome, state.batches
    return sequential.CONTINUE, state.batches


SCENARIOS = ("equal (normal)", "equal (heavy tails)", "equal, correlated", "equal, drifting",
             "slightly worse", "skewed worse", "clearly better", "slightly better")


def simulate(scenario: str, streams: int, looks: int, rows: int, alpha: float, seed: int,
             min_batches: int = 3) -> dict:
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario)])
    outcomes, used = [], []
    gains = []
    for _ in range(streams):
        champion, challenger = batch_losses(scenario, rng, looks, rows)
        gains.append(float(np.mean((champion - challenger) / (champion + challenger))))
        outcome, batches = run_stream(champion, challenger, alpha, min_batches)
        outcomes.append(outcome)
        used.append(batches)
    outcomes_arr, used_arr = np.array(outcomes), np.array(used)
    better = outcomes_arr == sequential.BETTER
    worse = outcomes_arr == sequential.WORSE
    return {"scenario": scenario, "streams": streams, "looks": looks, "rows": rows, "alpha": alpha,
            "mean_relative_gain": float(np.mean(gains)),
            "promoted": float(better.mean()), "judged_worse": float(worse.mean()),
            "batches_to_promote_median": float(np.median(used_arr[better])) if better.any() else None,
            "batches_to_promote_p90": float(np.percentile(used_arr[better], 90)) if better.any() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--looks", type=int, default=300)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    started = time.perf_counter()
    results = [simulate(s, args.streams, args.looks, args.rows, args.alpha, args.seed) for s in SCENARIOS]
    print(f"{args.streams} streams x up to {args.looks} looks, {args.rows} rows/batch, alpha {args.alpha}")
    print(f"{'scenario':22} {'mean r':>8} {'promoted':>9} {'worse':>7} {'median n':>9} {'p90 n':>6}")
    for r in results:
        median = "-" if r["batches_to_promote_median"] is None else f"{r['batches_to_promote_median']:.0f}"
        p90 = "-" if r["batches_to_promote_p90"] is None else f"{r['batches_to_promote_p90']:.0f}"
        print(f"{r['scenario']:22} {r['mean_relative_gain']:8.4f} {r['promoted']:9.2%} "
              f"{r['judged_worse']:7.2%} {median:>9} {p90:>6}")
    print(f"{time.perf_counter() - started:.1f} s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
