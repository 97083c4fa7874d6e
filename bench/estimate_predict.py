"""The label-free estimate's boosted trees (cross-fitted folds and scatter) on a 100-row batch:
scikit-learn's predict against monitor/tree_predict.py (bit-identical), CPU per call
(``time.process_time``), one thread; then the whole estimate.

    .venv/bin/python bench/estimate_predict.py [--rows 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from monitor.estimation import fit_regression_estimator
    from monitor.tree_predict import FastRegressor, speed_up

    out = {"rows": args.rows, "load_average": round(os.getloadavg()[0], 1), "models": []}
    with threadpool_limits(1):
        rng = np.random.default_rng(42)  # the push bench's model: 1,600 reference rows, y = x0 + noise
        reference = pd.DataFrame({"x0": rng.uniform(0, 100, 1600), "x1": rng.uniform(0, 100, 1600)})
        labels = reference["x0"] + rng.normal(0, 5, 1600)
        estimator = fit_regression_estimator(reference, ["x0", "x1"], reference["x0"].to_numpy(), labels)
        batch = pd.DataFrame({"x0": rng.uniform(0, 100, args.rows), "x1": rng.uniform(0, 100, args.rows)})
        design = estimator.design(batch, batch["x0"].to_numpy())
        for name, loss_model in estimator.losses.items():
            parts = [(f"fold{i}", m) for i, m in enumerate(loss_model.folds)]
            parts.append(("scatter", loss_model.scatter))
            for part, model in parts:
                started = time.process_time()
                fast = FastRegressor(model)
                built = time.process_time() - started
                assert np.array_equal(fast.predict(design), model.predict(design))
                timings = {}
                for label, predictor in (("sklearn", model), ("driftline", fast)):
                    started = time.process_time()
                    for _ in range(args.repeats):
                        predictor.predict(design)
                    timings[label] = round(1000 * (time.process_time() - started) / args.repeats, 3)
                out["models"].append({"model": f"{name}.{part}", "build_ms": round(1000 * built, 1),
                                      "cpu_ms_per_predict": timings})
                print(json.dumps(out["models"][-1]), flush=True)
        # The whole estimate as a push pays it (design, every loss model, the interval), served
        # estimators being sped up (monitor.tree_predict.speed_up) at load.
        speed_up(estimator)
        estimator.estimate(batch, batch["x0"].to_numpy())  # warm
        started = time.process_time()
        for _ in range(args.repeats):
            estimator.estimate(batch, batch["x0"].to_numpy())
        out["estimate_cpu_ms"] = round(1000 * (time.process_time() - started) / args.repeats, 3)
    total = {k: round(sum(m["cpu_ms_per_predict"][k] for m in out["models"]), 2)
             for k in ("sklearn", "driftline")}
    print(f"the estimate's {len(out['models'])} predictions per push: sklearn {total['sklearn']} ms, "
          f"Driftline {total['driftline']} ms CPU; the whole estimate {out['estimate_cpu_ms']} ms "
          f"(load {out['load_average']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
