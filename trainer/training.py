"""`train`: fit and evaluate every candidate (one MLflow run each), then register, validate and
select a champion per registered model name.

Order matters for safety:
1. every candidate is fitted, evaluated and logged to its run (nothing registered yet);
   a candidate that fails marks its run FAILED and the command stops there: no version is
   registered and no alias moves, even for the candidates that fitted (exit 1);
2. every fitted candidate is registered (an identical candidate already registered, same data
   fingerprint + split + params + kind, is reused instead: no run, no new version);
3. per model name the best candidate on hold-out MSE is loaded back through `models:/name/version`
   and must predict the hold-out before `champion` moves to it, and only if it beats the current
   champion, re-scored on this hold-out, by the relative margin. Every winner is validated before
   any alias moves, so a winner that fails validation leaves every alias where it was.

Speed: almost all the time goes into REST round trips to the tracking server, so independent work
runs in a small thread pool (MLflow 3's active-run stack is thread-local, so each candidate's
`start_run` is its own): step 1 per candidate, step 2 and 3 per model name (versions of one name are
still created in candidate order). `--autolog` runs step 1 one candidate at a time, since autolog
patches scikit-learn process-wide. Per run the trainer also makes as few calls as it can: tags go with
`create_run`, params in one batch, the metrics after log_model (linked to the logged model, which saves
log_model reading each metric's history back), both dataset inputs in one call, the reference files
are written once and uploaded to each run's artifact URI directly.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.utils.time import get_current_time_millis

from trainer import registry
from trainer.candidates import Candidate
from trainer.data import TrainingData
from trainer.errors import RunFailed
from trainer.tracking import code_version

DEFAULT_EXPERIMENT = "driftline-training"
DEFAULT_MARGIN = 0.01
TRAIN_ARTIFACT = "reference/train.parquet"
HOLDOUT_ARTIFACT = "reference/holdout.parquet"
TAG_FAILURE = "driftline.failure_reason"
MODEL_CODE = Path(__file__).with_name("first_feature_model.py")
# Threads for the per-candidate and per-model-name steps: the work is mostly waiting on the server.
MAX_WORKERS = 5
# Model.log tracks environment variables by patching os.environ's class for the duration of each
# call, which concurrent calls would interleave; see _env_var_recording_off.
RECORD_ENV_VARS = "MLFLOW_RECORD_ENV_VARS_IN_MODEL_LOGGING"

Progress = Callable[[str], None]
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class CandidateResult:
    candidate: Candidate
    candidate_id: str
    status: str = "pending"  # fitted | reused | failed
    run_id: str | None = None
    model_uri: str | None = None
    model_id: str | None = None
    version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def mse(self) -> float:
        return self.metrics.get("mean_squared_error", math.inf)


@dataclass
class Decision:
    model_name: str
    winner: CandidateResult | None
    champion_before: str | None
    champion_mse: float | None
    moved: bool
    reason: str


@dataclass
class TrainReport:
    results: list[CandidateResult]
    decisions: list[Decision] = field(default_factory=list)

    @property
    def failed(self) -> list[CandidateResult]:
        return [r for r in self.results if r.status == "failed"]


@dataclass(frozen=True)
class _Shared:
    """Computed once per `train`, read by every candidate's thread."""

    reference_dir: str
    sklearn_requirements: tuple[str, ...]
    pyfunc_requirements: tuple[str, ...]


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    # Imported here: a run where every candidate is reused never needs scikit-learn (~1 s of imports).
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mean_squared_error": float(mean_squared_error(y_true, y_pred)),
        "mean_absolute_error": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def train(client: MlflowClient, data: TrainingData, candidates: list[Candidate], *,
          experiment: str = DEFAULT_EXPERIMENT, margin: float = DEFAULT_MARGIN, actor: str = "trainer",
          autolog: bool = False, progress: Progress | None = None, select: bool = True) -> TrainReport:
    """Fit, log, register and select; see the module docstring for the order and the guarantees.

    ``select=False`` (``retrain``) registers without choosing a champion: no alias moves here."""
    say = progress or (lambda _line: None)
    mlflow.set_experiment(experiment)
    results = [CandidateResult(c, c.identity(data.fingerprint, data.split)) for c in candidates]
    report = TrainReport(results)
    width = max(len(c.model_name) for c in candidates)
    heads = [f"[{index}/{len(results)}] {r.candidate.model_name:<{width}}  "
             f"{r.candidate.display} {r.candidate.params_text()}" for index, r in enumerate(results, start=1)]
    # Identical candidates already registered are reused (only REST lookups, so always in parallel).
    list(_in_parallel(lambda r: _find_reusable(client, r), results))
    to_fit = [r.candidate for r in results if r.status != "reused"]
    concurrent = not autolog and len(to_fit) > 1 and not _env_var_recording_requested()
    with tempfile.TemporaryDirectory(prefix="driftline-reference-") as tmp:
        shared = _prepare(to_fit, data, Path(tmp))
        with _env_var_recording_off(concurrent):
            outcomes = _in_parallel(lambda r: _fit_and_log(client, r, data, autolog, shared), results,
                                    workers=MAX_WORKERS if concurrent else 1)
            # In candidate order, each line as soon as its candidate (and those before it) is done.
            for head, result, _ in zip(heads, results, outcomes, strict=True):
                say(f"{head}  {_progress_text(result)}")
    if report.failed:
        return report
    names = list(dict.fromkeys(r.candidate.model_name for r in results))
    groups = {name: [r for r in results if r.candidate.model_name == name] for name in names}
    # Versions of one name are created in candidate order; names are independent.
    list(_in_parallel(lambda name: _register_group(client, name, groups[name], data), names))
    if not select:
        return report
    # Every winner is validated before any alias moves.
    decided = list(_in_parallel(lambda name: _decide(client, name, groups[name], data, margin), names))
    report.decisions = [decision for decision, _ in decided]
    list(_in_parallel(lambda decision: _promote(client, decision, actor),
                      [decision for decision, move in decided if move]))
    return report


def _in_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int = MAX_WORKERS) -> Iterator[R]:
    """fn over items on up to `workers` threads; results in input order, each as soon as it (and
    every one before it) is done. An exception is raised at its item; not-yet-started items are
    cancelled and the running ones finish before it propagates."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="trainer")
    try:
        futures = [pool.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _env_var_recording_requested() -> bool:
    return os.environ.get(RECORD_ENV_VARS, "").strip().lower() in ("true", "1")


@contextlib.contextmanager
def _env_var_recording_off(active: bool) -> Iterator[None]:
    """Turn off MLflow's recording of the environment variables a model reads while it is logged.

    It patches `os._Environ`'s methods around each log_model call, which is not safe from several
    threads at once (a call can restore another's patch, or record another thread's variables).
    The trainer's models (scikit-learn estimators, FirstFeatureModel) read no environment variable
    when predicting, so the recorded list is empty either way. Set the variable to `true` explicitly
    to keep recording: the candidates are then logged one at a time.
    """
    if not active:
        yield
        return
    before = os.environ.get(RECORD_ENV_VARS)
    os.environ[RECORD_ENV_VARS] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RECORD_ENV_VARS, None)
        else:
            os.environ[RECORD_ENV_VARS] = before


def _prepare(candidates: list[Candidate], data: TrainingData, folder: Path) -> _Shared:
    """Per-`train` work done once, before any thread starts: the reference files, the pip
    requirements, and most of the imports MLflow does lazily in start_run and the first log_model,
    so the threads do not all wait on (or race through) the same first imports. Nothing when every
    candidate is reused."""
    if not candidates:
        return _Shared(str(folder), (), ())
    reference = folder / "reference"
    reference.mkdir()
    data.train.to_parquet(reference / "train.parquet", index=False)
    data.holdout.to_parquet(reference / "holdout.parquet", index=False)
    code_version()  # cached; runs `git describe` once
    import mlflow.data.pandas_dataset  # noqa: F401
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository  # noqa: F401

    with contextlib.suppress(Exception):
        import mlflow.pyfunc.scoring_server  # noqa: F401 - log_model validates the input example with it
    with contextlib.suppress(Exception):
        from mlflow.tracking.context.registry import resolve_tags

        resolve_tags({})  # what every start_run computes (imports GitPython for the git tags)

    if any(c.is_pyfunc for c in candidates):
        import trainer.first_feature_model  # noqa: F401
    sklearn_requirements: tuple[str, ...] = ()
    if any(not c.is_pyfunc for c in candidates):
        for module in dict.fromkeys(c.kind.rpartition(".")[0] for c in candidates if not c.is_pyfunc):
            with contextlib.suppress(Exception):  # a failure here is the candidate's, reported by its run
                importlib.import_module(module)
        with contextlib.suppress(ImportError):
            import skops.io  # noqa: F401 - MLflow's default sklearn format; imports all of sklearn
        sklearn_requirements = (f"mlflow=={mlflow.__version__}",
                                *mlflow.sklearn.get_default_pip_requirements())
    pyfunc_requirements = (f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}",
                           f"pandas=={pd.__version__}")
    # log_model checks the requirements against the installed packages; the first check builds a
    # module -> distribution map (about a second), which racing threads would each build again.
    with contextlib.suppress(Exception):
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        warn_dependency_requirement_mismatches(list(sklearn_requirements or pyfunc_requirements))
    return _Shared(str(reference), sklearn_requirements, pyfunc_requirements)


def _find_reusable(client: MlflowClient, result: CandidateResult) -> None:
    """Mark the result reused when a version with the same candidate id is registered."""
    existing = registry.find_candidate_version(client, result.candidate.model_name, result.candidate_id)
    if existing is not None:
        result.status, result.version, result.run_id = "reused", existing.version, existing.run_id
        result.metrics = {"mean_squared_error": registry.holdout_mse(existing),
                          **_run_metrics(client, existing.run_id)}


def _fit_and_log(client: MlflowClient, result: CandidateResult, data: TrainingData, autolog: bool,
                 shared: _Shared) -> None:
    if result.status != "reused":
        _run_candidate(client, result, data, autolog, shared)


def _progress_text(result: CandidateResult) -> str:
    if result.status == "reused":
        return f"mse={result.mse:.4f}  reused v{result.version} (identical candidate)"
    if result.status == "failed":
        return f"FAILED after {result.seconds:.1f}s: {result.error}"
    return f"mse={result.mse:.4f}  {result.seconds:.1f}s  run {result.run_id[:8]}"


def _run_candidate(client: MlflowClient, result: CandidateResult, data: TrainingData, autolog: bool,
                   shared: _Shared) -> None:
    candidate = result.candidate
    x_train, y_train = data.train[list(data.features)], data.train[data.target]
    x_hold, y_hold = data.holdout[list(data.features)], data.holdout[data.target]
    params = [Param(k, str(v)) for k, v in {**candidate.params, **data.split, "model_kind": candidate.kind,
                                             "rows": data.rows}.items()]
    started = time.perf_counter()
    if autolog:
        mlflow.autolog(log_models=False, log_datasets=False, log_input_examples=False, silent=True)
    try:
        with mlflow.start_run(run_name=f"{candidate.display} {candidate.params_text()}",
                              tags=_run_tags(result, data)) as run:
            result.run_id = run.info.run_id
            _log_reference(client, run, data, shared.reference_dir)
            try:
                if candidate.is_pyfunc:
                    from trainer.first_feature_model import FirstFeatureModel

                    model = FirstFeatureModel(**candidate.params)
                    predict = lambda frame: model.predict(None, frame)  # noqa: E731
                else:
                    model = candidate.build().fit(x_train, y_train)
                    predict = model.predict
                predictions = np.asarray(predict(x_hold), dtype="float64").reshape(-1)
                result.metrics = evaluate(y_hold.to_numpy(), predictions)
                if not all(math.isfinite(v) for v in result.metrics.values()):
                    raise ValueError("hold-out metrics are not finite")
            except Exception as exc:  # noqa: BLE001 - any estimator error fails this candidate
                result.status, result.error = "failed", f"{type(exc).__name__}: {_one_line(exc)}"
                client.log_batch(result.run_id, params=params, tags=[RunTag(TAG_FAILURE, result.error)])
                mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
                return
            # Params before log_model, which copies the run's params onto the logged model; the
            # metrics after it, linked to the logged model directly (logged before, log_model would
            # read each one's history back and log it again with the model id: 4 more round trips).
            client.log_batch(result.run_id, params=params)
            signature = infer_signature(x_train, np.asarray(predict(x_train.head(5)), dtype="float64"))
            example = x_train.head(5)
            if candidate.is_pyfunc:
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=str(MODEL_CODE), model_config=dict(candidate.params),
                    signature=signature, input_example=example,
                    pip_requirements=list(shared.pyfunc_requirements))
            else:
                info = mlflow.sklearn.log_model(
                    model, name="model", signature=signature, input_example=example,
                    pip_requirements=list(shared.sklearn_requirements))
            result.model_uri, result.model_id = info.model_uri, info.model_id
            client.log_batch(result.run_id, metrics=_metrics(result, info.model_id))
            result.status = "fitted"
    except Exception as exc:  # noqa: BLE001 - logging failed: the run is marked FAILED
        result.status, result.error = "failed", f"{type(exc).__name__}: {_one_line(exc)}"
        if result.run_id:
            _mark_failed(result.run_id, result.error, _metrics(result, None))
    finally:
        if autolog:
            mlflow.autolog(disable=True)
        result.seconds = time.perf_counter() - started


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    try:
        metrics = client.get_run(run_id).data.metrics
    except MlflowException:
        return {}
    return {k: metrics[k] for k in ("mean_squared_error", "mean_absolute_error", "r2") if k in metrics}


def _metrics(result: CandidateResult, model_id: str | None) -> list[Metric]:
    now = get_current_time_millis()
    return [Metric(key, value, now, 0, model_id=model_id, run_id=result.run_id)
            for key, value in result.metrics.items()]


def _mark_failed(run_id: str, reason: str, metrics: list[Metric] | None = None) -> None:
    client = MlflowClient()
    try:
        client.log_batch(run_id, metrics=metrics or [], tags=[RunTag(TAG_FAILURE, reason)])
        client.set_terminated(run_id, status="FAILED")
    except Exception:  # noqa: BLE001, S110 - best effort; the command fails anyway
        pass


def _lineage_tags(result: CandidateResult, data: TrainingData) -> dict[str, str]:
    """What both the run and the registered version say about where the model came from."""
    return {
        registry.TAG_TARGET: data.target,
        registry.TAG_FEATURES: ",".join(data.features),
        registry.TAG_FINGERPRINT: data.fingerprint,
        registry.TAG_CODE_VERSION: code_version(),
        registry.TAG_CANDIDATE: result.candidate_id,
        registry.TAG_KIND: result.candidate.kind,
    }


def _run_tags(result: CandidateResult, data: TrainingData) -> dict[str, str]:
    return {
        **_lineage_tags(result, data),
        "driftline.data_source": data.source[:500],
        "driftline.registered_model": result.candidate.model_name,
    }


def _log_reference(client: MlflowClient, run, data: TrainingData,  # noqa: ANN001 - mlflow ActiveRun
                   reference_dir: str) -> None:
    """The contract the monitor reads: parquet artifacts + dataset inputs whose source is their URI."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    # What client.log_artifacts does, minus its get_run to look up the URI we already have.
    repo = get_artifact_repository(run.info.artifact_uri, tracking_uri=client.tracking_uri)
    repo.log_artifacts(reference_dir, artifact_path="reference")
    datasets, contexts = [], []
    for frame, artifact, context, name in ((data.train, TRAIN_ARTIFACT, "training", "train"),
                                           (data.holdout, HOLDOUT_ARTIFACT, "evaluation", "holdout")):
        source = artifact_source(f"{run.info.artifact_uri}/{artifact}")
        # The run id in the name: MLflow shares one dataset record per (experiment, name, digest),
        # which would point every identical table at the first run's artifact.
        datasets.append(mlflow.data.from_pandas(frame, source=source, targets=data.target,
                                                name=f"{name}-{run.info.run_id[:12]}"))
        contexts.append(context)
    mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=[None] * len(datasets))


def artifact_source(uri: str):  # noqa: ANN201 - an mlflow DatasetSource
    """A dataset source for an artifact URI that any MLflow client can `load()`.

    MLflow 3.17 registers no dataset source for `mlflow-artifacts:/` URIs (the proxied store), so
    those get the built-in artifact-repository source of type "local", whose `load()` is
    `mlflow.artifacts.download_artifacts(artifact_uri=uri)`: that downloads through the tracking
    server, with no S3 credentials on the client. Other schemes (s3://, file) resolve as usual.
    """
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json, resolve_dataset_source
    from mlflow.exceptions import MlflowException

    try:
        return resolve_dataset_source(uri)
    except MlflowException:
        return get_dataset_source_from_json(json.dumps({"uri": uri}), "local")


def _register_group(client: MlflowClient, name: str, group: list[CandidateResult],
                    data: TrainingData) -> None:
    """Register the group's fitted candidates under `name`, in candidate order."""
    fitted = [r for r in group if r.status == "fitted"]
    if not fitted:
        return
    try:  # one round trip whether or not the name exists (a lookup first costs two for a new name)
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    for result in fitted:
        _register(client, result, data)


def _register(client: MlflowClient, result: CandidateResult, data: TrainingData) -> None:
    tags = {
        **_lineage_tags(result, data),
        registry.TAG_PARAMS: json.dumps(result.candidate.params, sort_keys=True, default=str),
        registry.TAG_HOLDOUT_MSE: repr(result.mse),
    }
    version = client.create_model_version(result.candidate.model_name, source=result.model_uri,
                                          run_id=result.run_id, tags=tags, model_id=result.model_id)
    result.version = str(version.version)


def _decide(client: MlflowClient, name: str, group: list[CandidateResult], data: TrainingData,
            margin: float) -> tuple[Decision, bool]:
    """The decision for `name`, and whether the champion alias should move to the winner; a winner
    to move to has been loaded through models:/ and has predicted the hold-out."""
    winner = min(group, key=lambda r: (r.mse, int(r.version)))
    x_hold, y_hold = data.holdout[list(data.features)], data.holdout[data.target].to_numpy()
    champion = registry.alias_version(client, name, registry.CHAMPION)
    if champion is not None and champion.version == winner.version:
        return Decision(name, winner, champion.version, winner.mse, False,
                        f"v{winner.version} is already champion"), False
    # A version this command just created cannot have been rolled back; a reused one may have been.
    mv = None if winner.status == "fitted" else client.get_model_version(name, winner.version)
    if mv is not None and mv.tags.get(registry.TAG_ROLLED_BACK):
        return Decision(name, winner, champion.version if champion else None, None, False,
                        f"v{winner.version} was rolled back at {mv.tags[registry.TAG_ROLLED_BACK]}; "
                        "promote it explicitly to make it champion again"), False
    champion_mse = None
    if champion is not None:
        champion_mse = _champion_mse(name, champion, data, x_hold, y_hold)
        threshold = champion_mse * (1.0 - margin)
        if not winner.mse < threshold:
            return Decision(name, winner, champion.version, champion_mse, False,
                            f"v{winner.version} mse {winner.mse:.4f} does not beat champion "
                            f"v{champion.version} mse {champion_mse:.4f} by {margin:.1%}"), False
    registry.predict_version(name, winner.version, x_hold)
    if champion is None:
        reason = f"train: first champion, hold-out mse {winner.mse:.4f}"
    else:
        reason = (f"train: hold-out mse {winner.mse:.4f} beats champion v{champion.version} "
                  f"({champion_mse:.4f}) by more than {margin:.1%}")
    return Decision(name, winner, champion.version if champion else None, champion_mse, False, reason), True


def _promote(client: MlflowClient, decision: Decision, actor: str) -> None:
    # The winner carries no rolled-back tag (_decide checked), so there is none to clear.
    registry.make_champion(client, decision.model_name, decision.winner.version, actor, decision.reason,
                           rolled_back=False)
    decision.moved = True


def _champion_mse(name: str, champion, data: TrainingData, x_hold: pd.DataFrame,  # noqa: ANN001
                  y_hold: np.ndarray) -> float:
    """The current champion's MSE on this hold-out (fair comparison); its recorded MSE when it was
    trained on other features or cannot be loaded."""
    if champion.tags.get(registry.TAG_FEATURES) == ",".join(data.features) and \
            champion.tags.get(registry.TAG_TARGET) == data.target:
        try:
            return evaluate(y_hold, registry.predict_version(name, champion.version, x_hold))[
                "mean_squared_error"]
        except RunFailed:
            pass
    return registry.holdout_mse(champion)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
