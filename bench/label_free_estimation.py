"""Label-free performance estimation (monitor/estimation.py): accuracy of the estimate and coverage of
its 90 % interval, seeded.

1. Regression with heteroscedastic noise (sd grows with |x0|), where input drift raises the true
   error: a linear model, a labelled reference, 2,000-row batches whose x0 shifts by a random amount.
   Reported: mean and worst |estimated MSE / realized MSE - 1|, share within 20 %, coverage of the
   90 % interval for MSE and MAE.
2. A calibrated classifier (logistic regression on logistic data) under covariate shift, 1,000-row
   batches: |estimated - realized accuracy|, share within 0.03, coverage.
3. Pure concept drift (inputs unchanged, the relation changes): the estimate does not move, the
   realized error does.

    .venv/bin/python bench/label_free_estimation.py [--batches 200] [--reference 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.estimation import fit_classifier_estimator, fit_regression_estimator


def regression_data(rng: np.random.Generator, n: int, shift: float = 0.0,
                    concept: float = 0.0) -> pd.DataFrame:
    x0 = rng.normal(shift, 1.0, n)
    x1 = rng.normal(0.0, 1.0, n)
    sd = 0.3 + 0.8 * np.abs(x0)  # the error depends on the inputs
    y = 2.0 * x0 + x1 + concept * x1 + rng.normal(0.0, 1.0, n) * sd
    return pd.DataFrame({"x0": x0, "x1": x1, "y": y})


def fitted_regression(seed: int, reference_rows: int, metrics: tuple[str, ...] = ("mse", "mae")):  # noqa: ANN201
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(seed)
    train = regression_data(rng, 2000)
    model = LinearRegression().fit(train[["x0", "x1"]], train["y"])
    reference = regression_data(rng, reference_rows)
    preds = model.predict(reference[["x0", "x1"]])
    estimator = fit_regression_estimator(reference[["x0", "x1"]], ["x0", "x1"], preds, reference["y"],
                                         seed=seed, metrics=metrics)
    return model, estimator, rng


def regression(batches: int, rows: int, reference_rows: int, seed: int = 7,
               max_shift: float = 1.5, metrics: tuple[str, ...] = ("mse", "mae")) -> dict:
    model, estimator, rng = fitted_regression(seed, reference_rows, metrics)
    out = {name: [] for name in metrics}
    for _ in range(batches):
        batch = regression_data(rng, rows, shift=float(rng.uniform(0.0, max_shift)))
        preds = model.predict(batch[["x0", "x1"]])
        est = estimator.estimate(batch[["x0", "x1"]], preds)["metrics"]
        err = batch["y"].to_numpy() - preds
        for name, realized in (("mse", float(np.mean(err**2))), ("mae", float(np.mean(np.abs(err))))):
            if name not in est:
                continue
            block = est[name]
            out[name].append((block["estimate"], realized, block["lower"] <= realized <= block["upper"]))
    summary = {}
    for name, values in out.items():
        arr = np.array([(e, r) for e, r, _ in values])
        rel = np.abs(arr[:, 0] / arr[:, 1] - 1)
        summary[name] = {"mean_abs_relative_error": float(rel.mean()),
                         "max_abs_relative_error": float(rel.max()),
                         "share_within_20pct": float(np.mean(rel <= 0.2)),
                         "coverage_90": float(np.mean([c for _, _, c in values])),
                         "realized_range": [float(arr[:, 1].min()), float(arr[:, 1].max())]}
    return summary


def coverage_across_references(seeds: list[int], reference_sizes: list[int], batches: int,
                                rows: int = 2000) -> dict:
    """The 90 % interval's coverage of the realized MSE, per reference sample (seed) and size, and pooled.

    The pooled figure's standard error is the cluster one (spread of the per-seed coverages / sqrt of
    the number of seeds): batches scored against one reference share its loss model's error, so they
    are not independent; the binomial standard error is reported beside it."""
    out: dict = {}
    for size in reference_sizes:
        per_seed, within, errors = {}, [], []
        for seed in seeds:
            result = regression(batches, rows, size, seed=seed, metrics=("mse",))["mse"]
            per_seed[str(seed)] = result["coverage_90"]
            within.append(result["share_within_20pct"])
            errors.append(result["mean_abs_relative_error"])
        covered = np.array(list(per_seed.values()))
        pooled = float(covered.mean())
        out[str(size)] = {"per_seed_coverage": per_seed, "pooled_coverage": pooled,
                          "pooled_se_cluster": float(covered.std(ddof=1) / np.sqrt(covered.size)),
                          "pooled_se_binomial": float(np.sqrt(pooled * (1 - pooled)
                                                              / (covered.size * batches))),
                          "min_seed_coverage": float(covered.min()),
                          "share_within_20pct": float(np.mean(within)),
                          "mean_abs_relative_error": float(np.mean(errors))}
    every = np.concatenate([list(v["per_seed_coverage"].values()) for v in out.values()])
    out["pooled_all"] = {"coverage": float(every.mean()),
                         "se_cluster": float(every.std(ddof=1) / np.sqrt(every.size)),
                         "references": int(every.size), "batches_each": batches}
    return out


def classifier_data(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    x = rng.normal(0.0, 1.0, (n, 2)) + np.array([shift, -0.5 * shift])
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(x, columns=["x0", "x1"]), y


def classifier(batches: int, rows: int, reference_rows: int, seed: int = 11, max_shift: float = 1.5) -> dict:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    train_x, train_y = classifier_data(rng, 4000)
    model = LogisticRegression().fit(train_x, train_y)
    ref_x, ref_y = classifier_data(rng, reference_rows)
    estimator = fit_classifier_estimator(ref_y, model.predict(ref_x), model.predict_proba(ref_x), [0, 1],
                                         seed=seed)
    errors, covered, f1_errors = [], [], []
    for _ in range(batches):
        x, y = classifier_data(rng, rows, shift=float(rng.uniform(0.0, max_shift)))
        pred = model.predict(x)
        est = estimator.estimate(pred, model.predict_proba(x))["metrics"]
        realized = float(np.mean(pred == y))
        errors.append(est["accuracy"]["estimate"] - realized)
        covered.append(est["accuracy"]["lower"] <= realized <= est["accuracy"]["upper"])
        from sklearn.metrics import f1_score

        f1_errors.append(est["macro_f1"]["estimate"] - f1_score(y, pred, average="macro"))
    errors = np.abs(np.array(errors))
    return {"mean_abs_error": float(errors.mean()), "max_abs_error": float(errors.max()),
            "share_within_0.03": float(np.mean(errors <= 0.03)), "coverage_90": float(np.mean(covered)),
            "macro_f1_mean_abs_error": float(np.mean(np.abs(f1_errors)))}


def concept(batches: int, rows: int, reference_rows: int, seed: int = 13) -> dict:
    model, estimator, rng = fitted_regression(seed, reference_rows)
    clean, drifted = [], []
    for which, strength in ((clean, 0.0), (drifted, 3.0)):
        for _ in range(batches):
            batch = regression_data(rng, rows, concept=strength)
            preds = model.predict(batch[["x0", "x1"]])
            est = estimator.estimate(batch[["x0", "x1"]], preds)["metrics"]["mse"]
            which.append((est["estimate"], float(np.mean((batch["y"].to_numpy() - preds) ** 2)),
                          est["lower"] <= np.mean((batch["y"].to_numpy() - preds) ** 2) <= est["upper"]))
    c, d = np.array(clean), np.array(drifted)
    return {"estimated_mse_clean": float(c[:, 0].mean()), "estimated_mse_concept": float(d[:, 0].mean()),
            "realized_mse_clean": float(c[:, 1].mean()), "realized_mse_concept": float(d[:, 1].mean()),
            "coverage_under_concept_drift": float(d[:, 2].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--reference", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=10, help="reference samples per size (seeds 0..N-1)")
    parser.add_argument("--seed-batches", type=int, default=40, help="batches per reference sample")
    args = parser.parse_args()
    start, cpu = time.perf_counter(), time.process_time()
    results = {
        "coverage_across_references": coverage_across_references(list(range(args.seeds)), [3000, 10000],
                                                                 args.seed_batches),
        "regression_2000_rows": regression(args.batches, 2000, args.reference),
        "classifier_1000_rows": classifier(args.batches, 1000, args.reference),
        "pure_concept_drift_2000_rows": concept(max(20, args.batches // 5), 2000, args.reference),
        "batches": args.batches, "reference_rows": args.reference,
    }
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["cpu_seconds"] = round(time.process_time() - cpu, 1)
    results["load_average"] = list(os.getloadavg())
    print(json.dumps(results, indent=1))
    out = Path(__file__).parent / "results" / "label_free_estimation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
