"""Speed and memory of drift scoring: Driftline vs scipy's ks_2samp loop vs Evidently 0.7.

Reference N x 20 float64 (a profile fitted once), current N x 20 shifted by 0.1 sd; KS + PSI +
Wasserstein on every feature. Each measurement runs in a fresh subprocess: one cold run for the peak
resident memory above the loaded data (kernel VmHWM reset via /proc/self/clear_refs), then timed runs
(best reported). Evidently runs in bench/.peers-venv (pandas < 3), created on first use.

    python bench/drift_speed.py                      # 1,000,000 and 100,000 rows, peers included
    python bench/drift_speed.py --rows 100000 --skip-peers

Figures are printed and written to bench/results/drift.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from peers_env import PEER_METHODS, ensure_peers_venv, make_frames, measure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "drift.json"
OUR_METHODS = ("driftline", "scipy_ks_loop", "numpy_sort_both")
LABELS = {
    "driftline": "Driftline score (profile fitted once; KS+PSI+Wasserstein)",
    "scipy_ks_loop": "scipy ks_2samp per column",
    "numpy_sort_both": "numpy sort of both arrays (floor for sort-based KS)",
    "evidently_default": "Evidently 0.7.23 DataDriftPreset()",
    "evidently_ks": 'Evidently 0.7.23 DataDriftPreset(method="ks")',
}


def run_ours(method: str, rows: int, features: int, shift: float, repeats: int) -> dict:
    reference, current = make_frames(rows, features, shift)
    extra: dict = {}
    if method == "driftline":
        import tracemalloc

        from monitor.drift import DriftDetector

        start = time.perf_counter()
        detector = DriftDetector().fit(reference)
        extra["fit_seconds"] = time.perf_counter() - start
        extra["profile_bytes"] = len(detector.profile_.to_bytes()) if rows <= 100_000 else None
        result = measure(lambda: detector.score(current), repeats)
        tracemalloc.start()
        report = detector.score(current)
        extra["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        extra["drifted_features"] = len(report.drifted_features)
    elif method == "scipy_ks_loop":
        from scipy.stats import ks_2samp

        ref = [reference[c].to_numpy() for c in reference.columns]
        cur = [current[c].to_numpy() for c in current.columns]
        result = measure(lambda: [ks_2samp(r, c) for r, c in zip(ref, cur, strict=True)], repeats)
    else:
        ref = [reference[c].to_numpy() for c in reference.columns]
        cur = [current[c].to_numpy() for c in current.columns]
        result = measure(lambda: [(np.sort(r), np.sort(c)) for r, c in zip(ref, cur, strict=True)], repeats)
    return {"method": method, **result, **extra}


def child(
    python: str, script: Path, method: str, rows: int, features: int, shift: float, repeats: int
) -> dict:
    cmd = [
        python,
        str(script),
        "--child",
        method,
        "--rows",
        str(rows),
        "--features",
        str(features),
        "--shift",
        str(shift),
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    lines = [f"{'rows':>9} {'method':<62} {'seconds':>9} {'vs ours':>8} {'peak extra MB':>13} {'x batch':>7}"]
    for r in results:
        ours = next(x for x in results if x["rows"] == r["rows"] and x["method"] == "driftline")
        ratio = r["seconds"] / ours["seconds"]
        mb = r["peak_extra_bytes"] / 1e6
        lines.append(
            f"{r['rows']:>9,} {LABELS[r['method']]:<62} {r['seconds']:>9.3f} {ratio:>7.1f}x {mb:>13.0f} "
            f"{r['peak_extra_bytes'] / r['batch_bytes']:>7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--shift", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-peers", action="store_true", help="only Driftline, scipy and numpy")
    parser.add_argument("--peer-rows-max", type=int, default=1_000_000, help="skip peers above this size")
    parser.add_argument("--child", choices=OUR_METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_ours(args.child, args.rows[0], args.features, args.shift, args.repeats)))
        return 0

    peers_python = None if args.skip_peers else str(ensure_peers_venv())
    results = []
    for rows in args.rows:
        batch_bytes = rows * args.features * 8
        for method in OUR_METHODS:
            r = child(sys.executable, Path(__file__), method, rows, args.features, args.shift, args.repeats)
            results.append({**r, "rows": rows, "batch_bytes": batch_bytes})
            print(f"  {rows:,} {method}: {r['seconds']:.3f} s", flush=True)
        if peers_python and rows <= args.peer_rows_max:
            for method in PEER_METHODS:
                r = child(peers_python, HERE / "peers_env.py", method, rows, args.features, args.shift, 1)
                results.append({**r, "rows": rows, "batch_bytes": batch_bytes})
                print(f"  {rows:,} {method}: {r['seconds']:.3f} s", flush=True)
    print()
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "drift_speed",
                "features": args.features,
                "shift_sd": args.shift,
                "machine": {
                    "cpus": __import__("os").cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
                "notes": "seconds = best of repeats (peers: one run); peak_extra_bytes = peak RSS above the "
                "loaded frames during one cold run; x batch = that over the current batch's size",
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
