"""CPU of one cold evaluation of a regression model with a 10,000-row reference, in process.

Cold: nothing in memory or in the database (a fresh SQLite file), so the profile is built from the
reference rows. No services: a stub registry hands out a 2-feature linear model and its reference
(``seed_scenarios``, train + holdout), and the evaluation runs the steps of
``EvaluationService._evaluate`` that cost CPU: validation, ``ProfileStore.resolve`` (the profile
build), ``ProfileStore.estimator`` (the label-free estimator: fitted for a batch without labels),
scoring and ``labels.fill_labels``. Prints the
process CPU (``time.process_time``) of a labelled 200-row batch (the scheduler's simulated batches)
and then of an unlabelled one (a push without the target), each cold in its own database.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cold_evaluation.py [--reference-rows 10000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one(labelled: bool, reference_rows: int, profile: bool) -> dict:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from monitor import labels
    from monitor.db import Base, make_engine, make_session_factory
    from monitor.evaluation import EvaluationService
    from monitor.models import Evaluation
    from monitor.reference import ProfileStore
    from monitor.registry import InputColumn, LoadedModel, ReferenceData
    from monitor.validation import validate_batch
    from seed_scenarios import ScenarioParams, make_batch

    reference = make_batch("clean", ScenarioParams(rows=reference_rows, seed=3))
    cut = int(0.8 * len(reference))
    train, holdout = reference.iloc[:cut].reset_index(drop=True), reference.iloc[cut:].reset_index(drop=True)
    fitted = LinearRegression().fit(train[["x0", "x1"]], train["y"])
    model = LoadedModel(name="cold", version="1", run_id=None, pyfunc=fitted,
                        inputs=[InputColumn("x0", "double"), InputColumn("x1", "double")],
                        target="y", features=["x0", "x1"])
    registry = SimpleNamespace(mlflow_reference=lambda _m: ReferenceData(train, holdout, "artifact", "bench"))
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp(prefix='driftline-cold-')}/monitor.db")
    Base.metadata.create_all(engine)
    store = ProfileStore(registry, make_session_factory(engine))  # type: ignore[arg-type]
    config = SimpleNamespace(drift_settings=lambda _name: {})
    service = SimpleNamespace(config=config)
    batch = make_batch("data_drift", ScenarioParams(rows=200, seed=5))
    if not labelled:
        batch = batch.drop(columns=["y"])

    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    checked = validate_batch(batch, model)
    choice = store.resolve(model, {}, 0)
    predictions, proba = EvaluationService._predict(service, model, checked.frame, choice)  # type: ignore[arg-type]
    EvaluationService._drift(service, model, checked.frame, choice, predictions, proba)  # type: ignore[arg-type]
    row = Evaluation(model_name="cold", batch_id="b1", report={})
    estimator = store.estimator(model, choice.key, choice.profile, fit=not checked.labelled)
    labels.fill_labels(row, model, checked, estimator, predictions, proba)
    if profiler:
        profiler.disable()
    out = {"labelled": labelled, "reference_rows": reference_rows,
           "cpu_seconds": round(time.process_time() - cpu, 2),
           "wall_seconds": round(time.perf_counter() - wall, 2),
           "estimate": None if row.estimate is None else round(row.estimate["metrics"]["mse"]["estimate"], 4)}
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        out["profile"] = text.getvalue()
    engine.dispose()
    del np
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference-rows", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # as `serve` sets them for its workers
    for labelled in (True, False):
        result = one(labelled, args.reference_rows, args.profile)
        profile = result.pop("profile", None)
        print(result, flush=True)
        if profile:
            print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
