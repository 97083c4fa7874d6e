"""Detection quality on the seed scenarios: false alarms, detection and attribution per batch size.

Each repetition draws a fresh 80-row clean reference (seed_scenarios, the one source of truth),
fits the model on it (identity f(x) = x0 by default, or OLS with --model ols), fits a DriftDetector
with the model's predictions and residuals, and scores one batch of 20, 100 or 1000 rows of each
scenario. Rates over --repeats repetitions (default 1000) per cell:

- false alarms: clean batches with any drift verdict (data, concept or prediction): the family-wise
  false-alarm rate of everything the monitor tests (target <= 5 %);
- detection: data-drift batches flagged as data drift, concept-drift batches as concept drift
  (target >= 99 % from 100 rows);
- attribution: data-drift batches flagged as data drift and not concept drift, and the reverse
  (target >= 95 %).

The course's method (per-feature KS at 0.05, no correction, no concept test) is the row to beat.
Figures are printed and written to bench/results/drift_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

from monitor.drift import DriftConfig, DriftDetector
from seed_scenarios import FEATURES, TARGET, ScenarioParams, make_batch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "drift_quality.json"
REFERENCE_ROWS = 80
SIZES = (20, 100, 1000)
SCENARIOS = ("clean", "data_drift", "concept_drift")
METHODS = {
    "driftline (Holm by kind, default)": DriftConfig(),
    "driftline, Holm pooled over all tests": DriftConfig(alpha_split="none"),
    "driftline, Bonferroni": DriftConfig(correction="bonferroni"),
    "driftline, Benjamini-Hochberg": DriftConfig(correction="bh"),
    "driftline, no correction": DriftConfig(correction="none"),
}
COURSE = "course: per-feature KS at 0.05, no correction"


def fit_model(reference, kind: str):
    """Prediction function fitted on the reference: identity x0, or least squares on x0, x1."""
    if kind == "identity":
        return lambda frame: frame["x0"].to_numpy()
    x = np.column_stack([np.ones(len(reference)), reference[list(FEATURES)].to_numpy()])
    coef, *_ = np.linalg.lstsq(x, reference[TARGET].to_numpy(), rcond=None)
    return lambda frame: np.column_stack([np.ones(len(frame)), frame[list(FEATURES)].to_numpy()]) @ coef


def one_repetition(args: tuple[int, str]) -> dict:
    """Verdicts of every method on one reference and one batch per scenario and size."""
    rep, model_kind = args
    reference = make_batch("clean", ScenarioParams(rows=REFERENCE_ROWS, seed=1_000_000 + rep))
    predict = fit_model(reference, model_kind)
    features = list(FEATURES)
    detectors = {
        name: DriftDetector(config).fit(
            reference[features], predictions=predict(reference), labels=reference[TARGET]
        )
        for name, config in METHODS.items()
    }
    out = {}
    for s_index, scenario in enumerate(SCENARIOS):
        for size in SIZES:
            seed = 2_000_000 + rep * 10 + s_index + 1000 * size
            batch = make_batch(scenario, ScenarioParams(rows=size, seed=seed))
            preds = predict(batch)
            cell = {}
            for name, detector in detectors.items():
                report = detector.score(batch[features], predictions=preds, labels=batch[TARGET])
                cell[name] = (report.data_drift, report.concept_drift, report.prediction_drift)
            course = any(ks_2samp(reference[f], batch[f]).pvalue < 0.05 for f in features)
            cell[COURSE] = (course, False, False)
            out[f"{scenario}/{size}"] = cell
    return out


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for name in [*METHODS, COURSE]:
        for size in SIZES:
            clean = np.array([r[f"clean/{size}"][name] for r in runs])
            data = np.array([r[f"data_drift/{size}"][name] for r in runs])
            concept = np.array([r[f"concept_drift/{size}"][name] for r in runs])
            has_concept_test = name != COURSE
            rows.append(
                {
                    "method": name,
                    "rows": size,
                    "false_alarm_rate": float(clean.any(axis=1).mean()),
                    "false_alarm_data_only": float(clean[:, 0].mean()),
                    "data_drift_detected": float(data[:, 0].mean()),
                    "data_drift_attributed": float((data[:, 0] & ~data[:, 1]).mean()),
                    "concept_drift_detected": float(concept[:, 1].mean()) if has_concept_test else None,
                    "concept_drift_attributed": float((concept[:, 1] & ~concept[:, 0]).mean())
                    if has_concept_test
                    else None,
                }
            )
    return rows


def pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:5.1f}%"


def table(rows: list[dict]) -> str:
    head = (
        f"{'method':<48} {'rows':>5} {'false alarms':>12} {'data det.':>9} {'data attr.':>10} "
        f"{'concept det.':>12} {'concept attr.':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['method']:<48} {r['rows']:>5} {pct(r['false_alarm_rate']):>12} "
            f"{pct(r['data_drift_detected']):>9} {pct(r['data_drift_attributed']):>10} "
            f"{pct(r['concept_drift_detected']):>12} {pct(r['concept_drift_attributed']):>13}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--model", choices=("identity", "ols"), default="identity")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    work = [(rep, args.model) for rep in range(args.repeats)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(one_repetition, work, chunksize=20))
    else:
        runs = [one_repetition(w) for w in work]
    rows = summarise(runs)
    elapsed = time.perf_counter() - start
    print(
        f"reference {REFERENCE_ROWS} rows, model {args.model}, {args.repeats} repetitions per cell "
        f"({elapsed:.0f} s)\n"
    )
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "drift_quality",
                "reference_rows": REFERENCE_ROWS,
                "model": args.model,
                "repeats": args.repeats,
                "seconds": elapsed,
                "targets": {
                    "false_alarm_rate_max": 0.05,
                    "detection_min_from_100_rows": 0.99,
                    "attribution_min": 0.95,
                },
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
