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

The course's method (per-feature KS at 0.05, no correction, no concept test) is the row to beat;
"driftline before" is the engine without the joint test (joint_test="none": per-feature KS only), and
"energy-only" the previous default joint test (joint_test="energy"). Attribution rates are printed
with their binomial standard error sqrt(p (1 - p) / repetitions).

Two more feature layouts check the family-wise false-alarm rate where a joint test could break it:
"correlated" (x1 = x0 + U(-5, 5), correlation 0.99) and "five features" (x0..x4 uniform, y depends on
x0 only); each on clean and data-drift batches (every feature +25) at the same sizes.

The power curve (``--curve-repeats``, default 150 per point) scores batches of 10 to 1,000 rows with a
shift of 0 to 1 reference sd on one feature or on both, and draws detection against shift per batch
size for Driftline (data-drift verdict, every test of the batch in the family), the course's method,
Evidently's default rule at these sizes (per-column KS at 0.05, dataset drift when at least half of the
columns drift) and alibi-detect's KSDrift default (per-column KS, Bonferroni at 0.05), the last two
computed with scipy from their documented rules. PNG: bench/results/drift_power.png.
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

# One BLAS thread per worker process: the workers already fill the cores, and OpenBLAS threads on the
# joint test's small matrix products only contend with each other (3x slower on this 2-core machine).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings)
from scipy.stats import ks_2samp  # noqa: E402

from monitor.drift import DriftConfig, DriftDetector  # noqa: E402
from seed_scenarios import FEATURES, TARGET, ScenarioParams, make_batch  # noqa: E402
from tests.drift.family_sim import draw, joint_p_values, verdicts  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "drift_quality.json"
REFERENCE_ROWS = 80
SIZES = (20, 100, 1000)
SCENARIOS = ("clean", "data_drift", "concept_drift")
METHODS = {
    "driftline (joint energy+mean test, Holm by kind, default)": DriftConfig(),
    "driftline, energy-only joint test (previous default)": DriftConfig(joint_test="energy"),
    "driftline before (per-feature KS, Holm by kind)": DriftConfig(joint_test="none"),
    "driftline, Holm pooled over all tests": DriftConfig(alpha_split="none"),
    "driftline, Bonferroni": DriftConfig(correction="bonferroni"),
    "driftline, Benjamini-Hochberg": DriftConfig(correction="bh"),
    "driftline, no correction": DriftConfig(correction="none"),
}
COURSE = "course: per-feature KS at 0.05, no correction"
LAYOUT_METHODS = tuple(list(METHODS)[:3])
LAYOUTS = ("correlated", "five features")
CURVE = HERE / "results" / "drift_power.png"
CURVE_SIZES = (10, 20, 50, 100, 200, 1000)
CURVE_SHIFTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
UNIFORM_SD = 100 / np.sqrt(12)  # sd of the seed's U(0, 100) features
CURVE_METHODS = (
    "Driftline",
    "course (KS at 0.05 per feature)",
    "Evidently default (KS at 0.05, half the columns)",
    "alibi-detect KSDrift (Bonferroni)",
)


def fit_model(reference, kind: str):
    """Prediction function fitted on the reference: identity x0, or least squares on x0, x1."""
    if kind == "identity":
        return lambda frame: frame["x0"].to_numpy()
    x = np.column_stack([np.ones(len(reference)), reference[list(FEATURES)].to_numpy()])
    coef, *_ = np.linalg.lstsq(x, reference[TARGET].to_numpy(), rcond=None)
    return lambda frame: np.column_stack([np.ones(len(frame)), frame[list(FEATURES)].to_numpy()]) @ coef


def one_repetition(args: tuple[int, str, tuple[str, ...]]) -> dict:
    """Verdicts of every method on one reference and one batch per scenario and size."""
    rep, model_kind, names = args
    reference = make_batch("clean", ScenarioParams(rows=REFERENCE_ROWS, seed=1_000_000 + rep))
    predict = fit_model(reference, model_kind)
    features = list(FEATURES)
    detectors = {
        name: DriftDetector(config).fit(
            reference[features], predictions=predict(reference), labels=reference[TARGET]
        )
        for name, config in METHODS.items()
        if name in names
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


def layout_frame(layout: str, rows: int, shift: float, seed: int):
    """Clean (shift 0) or shifted rows of one of the extra layouts, with y = x0 + N(0, 5)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    if layout == "correlated":
        x0 = rng.uniform(0, 100, rows)
        x = np.column_stack([x0, x0 + rng.uniform(-5, 5, rows)])
    else:
        x = rng.uniform(0, 100, (rows, 5))
    x = x + shift
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame[TARGET] = x[:, 0] + rng.normal(0, 5, rows)
    return frame


def one_layout_repetition(rep: int) -> dict:
    """Verdicts on clean and data-drift batches of the extra layouts (identity model f(x) = x0)."""
    out = {}
    for l_index, layout in enumerate(LAYOUTS):
        reference = layout_frame(layout, REFERENCE_ROWS, 0.0, 3_000_000 + 10 * rep + l_index)
        features = [c for c in reference.columns if c != TARGET]
        detectors = {
            name: DriftDetector(METHODS[name]).fit(
                reference[features], predictions=reference["x0"], labels=reference[TARGET]
            )
            for name in LAYOUT_METHODS
        }
        for s_index, (scenario, shift) in enumerate((("clean", 0.0), ("data_drift", 25.0))):
            for size in SIZES:
                seed = 4_000_000 + rep * 100 + l_index * 10 + s_index + 1000 * size
                batch = layout_frame(layout, size, shift, seed)
                cell = {}
                for name, detector in detectors.items():
                    r = detector.score(batch[features], predictions=batch["x0"], labels=batch[TARGET])
                    cell[name] = (r.data_drift, r.concept_drift, r.prediction_drift)
                out[f"{layout}/{scenario}/{size}"] = cell
    return out


def summarise_layouts(runs: list[dict]) -> list[dict]:
    rows = []
    for layout in LAYOUTS:
        for name in LAYOUT_METHODS:
            for size in SIZES:
                clean = np.array([r[f"{layout}/clean/{size}"][name] for r in runs])
                data = np.array([r[f"{layout}/data_drift/{size}"][name] for r in runs])
                rows.append(
                    {
                        "layout": layout,
                        "method": name,
                        "rows": size,
                        "false_alarm_rate": float(clean.any(axis=1).mean()),
                        "data_drift_detected": float(data[:, 0].mean()),
                        "data_drift_attributed": float((data[:, 0] & ~data[:, 1]).mean()),
                    }
                )
    return rows


def one_curve_repetition(rep: int) -> dict:
    """Data-drift decisions of every curve method for each batch size, shift and 'one'/'all' features."""
    reference = make_batch("clean", ScenarioParams(rows=REFERENCE_ROWS, seed=5_000_000 + rep))
    features = list(FEATURES)
    detector = DriftDetector(DriftConfig()).fit(
        reference[features], predictions=reference["x0"], labels=reference[TARGET]
    )
    out = {}
    for size in CURVE_SIZES:
        base = make_batch("clean", ScenarioParams(rows=size, seed=6_000_000 + rep * 10 + size))
        for which in ("one", "all"):
            for shift in CURVE_SHIFTS:
                batch = base.copy()
                moved = ["x1"] if which == "one" else features  # x1: the feature the model ignores
                for f in moved:
                    batch[f] = batch[f] + shift * UNIFORM_SD
                report = detector.score(batch[features], predictions=batch["x0"], labels=batch[TARGET])
                p = np.array([ks_2samp(reference[f], batch[f]).pvalue for f in features])
                out[f"{which}/{size}/{shift}"] = (
                    report.data_drift,
                    bool((p < 0.05).any()),
                    bool((p < 0.05).mean() >= 0.5),
                    bool((p < 0.05 / len(p)).any()),
                )
    return out


def summarise_curve(runs: list[dict]) -> list[dict]:
    rows = []
    for which in ("one", "all"):
        for size in CURVE_SIZES:
            for shift in CURVE_SHIFTS:
                hits = np.array([r[f"{which}/{size}/{shift}"] for r in runs]).mean(axis=0)
                rows.append(
                    {"shifted": which, "rows": size, "shift_sd": shift}
                    | {m: float(h) for m, h in zip(CURVE_METHODS, hits, strict=True)}
                )
    return rows


def draw_curve(rows: list[dict], repeats: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = CURVE_SIZES
    fig, axes = plt.subplots(2, len(sizes), figsize=(2.6 * len(sizes), 6.2), sharex=True, sharey=True)
    styles = dict(zip(CURVE_METHODS, ("-", "--", ":", "-."), strict=True))  # Evidently = course at 2 columns
    colours = dict(zip(CURVE_METHODS, ("C3", "C0", "C2", "C1"), strict=True))
    for r_index, which in enumerate(("one", "all")):
        for c_index, size in enumerate(sizes):
            ax = axes[r_index, c_index]
            cell = [r for r in rows if r["shifted"] == which and r["rows"] == size]
            for method in CURVE_METHODS:
                ax.plot(
                    [r["shift_sd"] for r in cell],
                    [100 * r[method] for r in cell],
                    styles[method],
                    color=colours[method],
                    lw=2 if method == "Driftline" else 1.3,
                    label=method,
                )
            ax.axhline(5, color="grey", lw=0.6)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            if r_index == 0:
                ax.set_title(f"{size} rows")
            if r_index == 1:
                ax.set_xlabel("shift (reference sd)")
            if c_index == 0:
                ax.set_ylabel(("x1 shifted" if which == "one" else "x0 and x1 shifted") + "\ndetected (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    fig.suptitle(
        f"Data drift detected vs shift, 80-row reference, 2 uniform features, identity model "
        f"({repeats} repetitions per point; shift 0 = false alarms; grey line: 5 %)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise(runs: list[dict], names: tuple[str, ...]) -> list[dict]:
    rows = []
    for name in [*names, COURSE]:
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
                    "data_drift_attributed_se": se((data[:, 0] & ~data[:, 1]).mean(), len(runs)),
                    "concept_drift_detected": float(concept[:, 1].mean()) if has_concept_test else None,
                    "concept_drift_attributed": float((concept[:, 1] & ~concept[:, 0]).mean())
                    if has_concept_test
                    else None,
                    "concept_drift_attributed_se": se((concept[:, 1] & ~concept[:, 0]).mean(), len(runs))
                    if has_concept_test
                    else None,
                }
            )
    return rows


def se(rate: float, n: int) -> float:
    """Binomial standard error of a rate measured on n repetitions."""
    return float(np.sqrt(rate * (1 - rate) / n))


def pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:5.1f}%"


def with_se(row: dict, key: str) -> str:
    if row[key] is None:
        return pct(None)
    return f"{pct(row[key])} ({pct(row[key + '_se']).strip()})"


def table(rows: list[dict]) -> str:
    head = (
        f"{'method':<56} {'rows':>5} {'false alarms':>12} {'data det.':>9} {'data attr. (se)':>16} "
        f"{'concept det.':>12} {'concept attr. (se)':>19}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['method']:<56} {r['rows']:>5} {pct(r['false_alarm_rate']):>12} "
            f"{pct(r['data_drift_detected']):>9} "
            f"{with_se(r, 'data_drift_attributed'):>16} "
            f"{pct(r['concept_drift_detected']):>12} "
            f"{with_se(r, 'concept_drift_attributed'):>19}"
        )
    return "\n".join(lines)


def layout_table(rows: list[dict]) -> str:
    head = (
        f"{'layout':<14} {'method':<56} {'rows':>5} {'false alarms':>12} {'data det.':>9} "
        f"{'data attr.':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['layout']:<14} {r['method']:<56} {r['rows']:>5} {pct(r['false_alarm_rate']):>12} "
            f"{pct(r['data_drift_detected']):>9} {pct(r['data_drift_attributed']):>10}"
        )
    return "\n".join(lines)


def curve_table(rows: list[dict]) -> str:
    lines = [f"{'shifted':<8} {'rows':>5} {'shift':>5}  " + "  ".join(f"{m[:22]:>22}" for m in CURVE_METHODS)]
    for r in rows:
        lines.append(
            f"{r['shifted']:<8} {r['rows']:>5} {r['shift_sd']:>5.1f}  "
            + "  ".join(f"{pct(r[m]):>22}" for m in CURVE_METHODS)
        )
    return "\n".join(lines)


FAMILY_CONFIGS = {
    "default (energy+mean joint test)": DriftConfig(),
    "energy-only joint test (previous default)": DriftConfig(joint_test="energy"),
    "per-feature KS only (before issue 17)": DriftConfig(joint_test="none"),
}
FAMILY_LAYOUTS = ("seed", "correlated", "five features")


def family_cell(args: tuple[str, int, int]) -> list[dict]:
    """Every FAMILY_CONFIGS method on ``repeats`` batches of one layout and size, three scenarios.

    The engine's decisions computed vectorised (tests/drift/family_sim.py: the engine's ks_pvalue,
    joint_tests and decision.correct; test_joint_fwer.py checks they equal the detector's), so 2,000
    repetitions take seconds per cell. Seed layout: clean, data drift (every feature +25), concept
    drift (y + 10); the other layouts: clean and data drift.
    """
    layout, size, repeats = args
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng([2026, size, FAMILY_LAYOUTS.index(layout)])
    x_ref, y_ref = draw(layout, repeats, REFERENCE_ROWS, rng)
    x_cur, y_cur = draw(layout, repeats, size, rng)
    scenarios = {"clean": (x_cur, y_cur), "data_drift": (x_cur + 25, y_cur + 25)}
    if layout == "seed":
        scenarios["concept_drift"] = (x_cur, y_cur + 10)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    with threadpool_limits(1):
        for scenario, (x, y) in scenarios.items():
            p_joint = joint_p_values(x_ref, x, DriftConfig()) if REFERENCE_ROWS + size <= 1000 else {}
            for name, config in FAMILY_CONFIGS.items():
                out.setdefault(name, {})[scenario] = verdicts(
                    x_ref, y_ref, x, y, config, p_joint.get(config.joint_test)
                )
    rows = []
    for name, cells in out.items():
        any_c, _, _ = cells["clean"]
        _, data_d, concept_d = cells["data_drift"]
        row = {
            "layout": layout,
            "method": name,
            "rows": size,
            "repeats": repeats,
            "false_alarm_rate": float(any_c.mean()),
            "data_drift_detected": float(data_d.mean()),
            "data_drift_attributed": float((data_d & ~concept_d).mean()),
            "data_drift_attributed_se": se((data_d & ~concept_d).mean(), repeats),
            "data_drift_with_concept_alarm": float((data_d & concept_d).mean()),
        }
        if "concept_drift" in cells:
            _, data_c, concept_c = cells["concept_drift"]
            row |= {
                "concept_drift_detected": float(concept_c.mean()),
                "concept_drift_attributed": float((concept_c & ~data_c).mean()),
                "concept_drift_attributed_se": se((concept_c & ~data_c).mean(), repeats),
            }
        rows.append(row)
    return rows


def family_table(rows: list[dict]) -> str:
    head = (
        f"{'layout':<14} {'method':<42} {'rows':>5} {'false alarms':>12} {'data det.':>9} "
        f"{'data attr. (se)':>16} {'concept det.':>12} {'concept attr. (se)':>19}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        concept = "concept_drift_detected" in r
        lines.append(
            f"{r['layout']:<14} {r['method']:<42} {r['rows']:>5} {pct(r['false_alarm_rate']):>12} "
            f"{pct(r['data_drift_detected']):>9} {with_se(r, 'data_drift_attributed'):>16} "
            f"{pct(r['concept_drift_detected'] if concept else None):>12} "
            f"{with_se(r, 'concept_drift_attributed') if concept else pct(None):>19}"
        )
    return "\n".join(lines)


def run_all(fn, reps: int, jobs: int) -> list[dict]:
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(fn, range(reps), chunksize=10))
    return [fn(r) for r in range(reps)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--model", choices=("identity", "ols"), default="identity")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--methods",
        default="all",
        help="comma-separated indices into the method list (0 = default, 1 = before, ...) or 'all'",
    )
    parser.add_argument("--layout-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--curve-repeats", type=int, default=150, help="0 skips the power curve")
    parser.add_argument(
        "--family-repeats", type=int, default=2000,
        help="batches per cell of the vectorised simulation (every layout and size); 0 skips it",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    family_rows: list[dict] = []
    if args.family_repeats:
        cells = [(layout, size, args.family_repeats) for layout in FAMILY_LAYOUTS for size in SIZES]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                family_rows = [row for rows in pool.map(family_cell, cells) for row in rows]
        else:
            family_rows = [row for cell in cells for row in family_cell(cell)]
        print(
            f"vectorised engine decisions, {args.family_repeats} repetitions per cell "
            f"({time.perf_counter() - start:.0f} s)\n"
        )
        print(family_table(family_rows))
        print()
    names = tuple(METHODS) if args.methods == "all" else tuple(
        list(METHODS)[int(i)] for i in args.methods.split(",")
    )
    work = [(rep, args.model, names) for rep in range(args.repeats)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(one_repetition, work, chunksize=20))
    else:
        runs = [one_repetition(w) for w in work]
    rows = summarise(runs, names)
    elapsed = time.perf_counter() - start
    print(
        f"reference {REFERENCE_ROWS} rows, model {args.model}, {args.repeats} repetitions per cell "
        f"({elapsed:.0f} s)\n"
    )
    print(table(rows))
    layout_reps = args.repeats if args.layout_repeats is None else args.layout_repeats
    layout_rows: list[dict] = []
    if layout_reps:
        t0 = time.perf_counter()
        layout_rows = summarise_layouts(run_all(one_layout_repetition, layout_reps, args.jobs))
        took = time.perf_counter() - t0
        print(f"\nother layouts, identity model, {layout_reps} repetitions ({took:.0f} s)\n")
        print(layout_table(layout_rows))
    curve_rows: list[dict] = []
    if args.curve_repeats:
        t0 = time.perf_counter()
        curve_rows = summarise_curve(run_all(one_curve_repetition, args.curve_repeats, args.jobs))
        draw_curve(curve_rows, args.curve_repeats, CURVE)
        took = time.perf_counter() - t0
        print(f"\npower curve, {args.curve_repeats} repetitions per point ({took:.0f} s)\n")
        print(curve_table(curve_rows))
        print(f"\npicture written to {CURVE.relative_to(HERE.parent)}")
    elapsed = time.perf_counter() - start
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
                    "data_drift_detected_min": {"20": 0.95, "100": 0.995},
                    "concept_drift_detected_min_20_rows": 0.99,
                    "attribution_min": 0.97,
                },
                "family_repeats": args.family_repeats,
                "family": family_rows,
                "results": rows,
                "layout_repeats": layout_reps,
                "layouts": layout_rows,
                "curve_repeats": args.curve_repeats,
                "curve": curve_rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
