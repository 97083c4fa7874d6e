"""The peers' virtualenv for the speed benchmark, and the peer measurements that run inside it.

Evidently 0.7 needs pandas < 3 while Driftline pins pandas 3, so the peers live in their own
virtualenv at bench/.peers-venv (created on first use with pip). ``drift_speed.py`` runs this file
with the peers' Python (``--child METHOD``) so each measurement happens in a fresh process.
This file must import nothing from the Driftline package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import venv
from pathlib import Path

PEERS_VENV = Path(__file__).resolve().parent / ".peers-venv"
PEER_REQUIREMENTS = ["evidently==0.7.23", "pandas<3"]
PEER_METHODS = ("evidently_default", "evidently_ks")


def peers_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def ensure_peers_venv(quiet: bool = True) -> Path:
    """Create the peers' virtualenv once (a few minutes: Evidently pulls a large dependency tree)."""
    python = peers_python()
    stamp = PEERS_VENV / ".installed"
    if python.exists() and stamp.exists():
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(PEERS_VENV)
    quiet_flag = ["--quiet"] if quiet else []
    subprocess.run([str(python), "-m", "pip", "install", *quiet_flag, "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", *quiet_flag, *PEER_REQUIREMENTS], check=True)
    stamp.write_text(" ".join(PEER_REQUIREMENTS) + "\n")
    return python


# --- measurement helpers shared with drift_speed.py (copied there would drift apart) -----------------
def make_frames(rows: int, features: int, shift: float, seed: int = 0):
    """Reference N(0, 1) and current N(shift, 1), float64, same generator in both virtualenvs."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = [f"f{i}" for i in range(features)]
    reference = pd.DataFrame(rng.standard_normal((rows, features)), columns=columns)
    current = pd.DataFrame(rng.standard_normal((rows, features)) + shift, columns=columns)
    return reference, current


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (VmHWM) and return the current RSS in bytes."""
    import gc

    gc.collect()
    with contextlib.suppress(OSError):  # kernels without clear_refs: the peak then includes setup
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS") * 1024


def peak_rss() -> int:
    return _status_kb("VmHWM") * 1024


def measure(run, repeats: int) -> dict:
    """One cold run for peak memory above the loaded data, then ``repeats`` timed runs (best and all)."""
    base = reset_peak_rss()
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    extra = peak_rss() - base
    times = [first]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"seconds": min(times), "all_seconds": times, "peak_extra_bytes": extra, "base_rss_bytes": base}


def run_peer(method: str, rows: int, features: int, shift: float, repeats: int) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference, current = make_frames(rows, features, shift)
    preset = DataDriftPreset() if method == "evidently_default" else DataDriftPreset(method="ks")

    def run():
        Report([preset]).run(current_data=current, reference_data=reference)

    import evidently

    return {"method": method, "version": evidently.__version__, **measure(run, repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--install", action="store_true", help="create the peers' virtualenv and exit")
    parser.add_argument("--child", choices=PEER_METHODS)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--shift", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    if args.install:
        print(ensure_peers_venv(quiet=False))
        return 0
    if args.child:
        print(json.dumps(run_peer(args.child, args.rows, args.features, args.shift, args.repeats)))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
