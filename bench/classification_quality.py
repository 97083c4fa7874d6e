"""Detection quality for classifiers: false alarms, detection and attribution per batch size.

The companion of bench/drift_quality.py (regression on the seed scenarios) for issue 12's
classifiers. Each repetition trains an sklearn Pipeline (scaler + one-hot + logistic regression) on
1,000 fresh rows of the churn scenario (tests/monitor/team_models.py: a numeric input `tenure`, a
string input `plan`, a binary target), profiles a separate 500-row reference (what a reference
window or a logged evaluation set gives) and scores one batch of 100 and 1,000 rows of each scenario:

- clean: same distribution;
- data_drift: tenure +25 and the plan mix reversed (so the class mix moves too);
- concept_drift: the relation flipped (churn on long tenure), inputs and class mix unchanged.

Rates over --repeats repetitions per cell (default 500):

- false alarms: clean batches with any verdict (data incl. label drift, concept, prediction): the
  family-wise false-alarm rate of every test on the batch (target <= 5 %);
- detection: data-drift batches flagged as data drift, concept-drift batches as concept drift;
- attribution: data-drift batches flagged as data drift and not concept drift, and the reverse.

Two model variants: with predict_proba (concept test: Welch t on per-row excess log loss, scores KS)
and predicted classes only (concept test: chi2 on right/wrong). Figures are printed and written to
bench/results/classification_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from monitor.drift import DriftConfig, DriftDetector  # noqa: E402
from monitor.drift.classification import fit_classification  # noqa: E402
from tests.monitor.team_models import churn_frame  # noqa: E402

RESULTS = HERE / "results" / "classification_quality.json"
TRAIN_ROWS, REFERENCE_ROWS = 1000, 500
SIZES = (100, 1000)
SCENARIOS = ("clean", "data_drift", "concept_drift")
INPUTS, TARGET = ["tenure", "plan"], "churned"
VARIANTS = ("with predict_proba", "classes only")


def pipeline(seed: int):  # noqa: ANN201 - an sklearn Pipeline
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = churn_frame(TRAIN_ROWS, seed)
    prep = ColumnTransformer([("num", StandardScaler(), ["tenure"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])
    return Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=1000))]).fit(
        train[INPUTS], train[TARGET])


def detector(pipe, reference, with_proba: bool) -> DriftDetector:  # noqa: ANN001
    fitted = DriftDetector(DriftConfig()).fit(reference[INPUTS])
    proba = pipe.predict_proba(reference[INPUTS]) if with_proba else None
    fitted.profile_.classification = fit_classification(
        reference[TARGET], pipe.predict(reference[INPUTS]), proba, pipe.classes_, 10)
    fitted.profile_.metadata["target"] = TARGET
    return fitted


def one_repetition(rep: int) -> dict:
    warnings.simplefilter("ignore")
    pipe = pipeline(3_000_000 + rep)
    reference = churn_frame(REFERENCE_ROWS, 4_000_000 + rep)
    detectors = {v: detector(pipe, reference, v == VARIANTS[0]) for v in VARIANTS}
    out = {}
    for s_index, scenario in enumerate(SCENARIOS):
        for size in SIZES:
            batch = churn_frame(size, 5_000_000 + rep * 10 + s_index + 1000 * size, scenario)
            preds = pipe.predict(batch[INPUTS])
            proba = pipe.predict_proba(batch[INPUTS])
            cell = {}
            for variant, fitted in detectors.items():
                report = fitted.score(batch[INPUTS], predictions=preds, labels=batch[TARGET],
                                      probabilities=proba if variant == VARIANTS[0] else None)
                cell[variant] = (report.data_drift, report.concept_drift, report.prediction_drift)
            out[f"{scenario}/{size}"] = cell
    return out


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for variant in VARIANTS:
        for size in SIZES:
            clean = np.array([r[f"clean/{size}"][variant] for r in runs])
            data = np.array([r[f"data_drift/{size}"][variant] for r in runs])
            concept = np.array([r[f"concept_drift/{size}"][variant] for r in runs])
            rows.append({
                "method": f"driftline classifier, {variant}", "rows": size,
                "false_alarm_rate": float(clean.any(axis=1).mean()),
                "data_drift_detected": float(data[:, 0].mean()),
                "data_drift_attributed": float((data[:, 0] & ~data[:, 1]).mean()),
                "concept_drift_detected": float(concept[:, 1].mean()),
                "concept_drift_attributed": float((concept[:, 1] & ~concept[:, 0]).mean()),
            })
    return rows


def table(rows: list[dict]) -> str:
    def pct(value: float) -> str:
        return f"{100 * value:5.1f}%"

    head = (f"{'method':<48} {'rows':>5} {'false alarms':>12} {'data det.':>9} {'data attr.':>10} "
            f"{'concept det.':>12} {'concept attr.':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<48} {r['rows']:>5} {pct(r['false_alarm_rate']):>12} "
                     f"{pct(r['data_drift_detected']):>9} {pct(r['data_drift_attributed']):>10} "
                     f"{pct(r['concept_drift_detected']):>12} {pct(r['concept_drift_attributed']):>13}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(one_repetition, range(args.repeats), chunksize=10))
    else:
        runs = [one_repetition(rep) for rep in range(args.repeats)]
    rows = summarise(runs)
    elapsed = time.perf_counter() - start
    print(f"train {TRAIN_ROWS} rows, reference {REFERENCE_ROWS} rows, {args.repeats} repetitions per cell "
          f"({elapsed:.0f} s)\n")
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "classification_quality", "train_rows": TRAIN_ROWS, "reference_rows": REFERENCE_ROWS,
        "repeats": args.repeats, "seconds": elapsed,
        "targets": {"false_alarm_rate_max": 0.05}, "results": rows}, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
