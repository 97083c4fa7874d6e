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
   champion, re-scored on this hold-out, by the relative margin.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

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

Progress = Callable[[str], None]


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


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "mean_squared_error": float(mean_squared_error(y_true, y_pred)),
        "mean_absolute_error": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def train(client: MlflowClient, data: TrainingData, candidates: list[Candidate], *,
          experiment: str = DEFAULT_EXPERIMENT, margin: float = DEFAULT_MARGIN, actor: str = "trainer",
          autolog: bool = False, progress: Progress | None = None) -> TrainReport:
    """Fit, log, register and select; see the module docstring for the order and the guarantees."""
    say = progress or (lambda _line: None)
    mlflow.set_experiment(experiment)
    results = [CandidateResult(c, c.identity(data.fingerprint, data.split)) for c in candidates]
    report = TrainReport(results)
    width = max(len(c.model_name) for c in candidates)
    for index, result in enumerate(results, start=1):
        head = f"[{index}/{len(results)}] {result.candidate.model_name:<{width}}  " \
               f"{result.candidate.display} {result.candidate.params_text()}"
        existing = registry.find_candidate_version(client, result.candidate.model_name, result.candidate_id)
        if existing is not None:
            result.status, result.version, result.run_id = "reused", existing.version, existing.run_id
            result.metrics = {"mean_squared_error": registry.holdout_mse(existing),
                              **_run_metrics(client, existing.run_id)}
            say(f"{head}  mse={result.mse:.4f}  reused v{existing.version} (identical candidate)")
            continue
        _run_candidate(result, data, autolog)
        if result.status == "failed":
            say(f"{head}  FAILED after {result.seconds:.1f}s: {result.error}")
        else:
            say(f"{head}  mse={result.mse:.4f}  {result.seconds:.1f}s  run {result.run_id[:8]}")
    if report.failed:
        return report
    for result in results:
        if result.status == "fitted":
            _register(client, result, data)
    for name in dict.fromkeys(r.candidate.model_name for r in results):
        group = [r for r in results if r.candidate.model_name == name]
        report.decisions.append(_select(client, name, group, data, margin, actor))
    return report


def _run_candidate(result: CandidateResult, data: TrainingData, autolog: bool) -> None:
    candidate = result.candidate
    x_train, y_train = data.train[list(data.features)], data.train[data.target]
    x_hold, y_hold = data.holdout[list(data.features)], data.holdout[data.target]
    started = time.perf_counter()
    if autolog:
        mlflow.autolog(log_models=False, log_datasets=False, log_input_examples=False, silent=True)
    try:
        with mlflow.start_run(run_name=f"{candidate.display} {candidate.params_text()}") as run:
            result.run_id = run.info.run_id
            mlflow.set_tags(_run_tags(result, data))
            mlflow.log_params({**candidate.params, **data.split, "model_kind": candidate.kind,
                               "rows": data.rows})
            _log_reference(run, data)
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
                mlflow.set_tag(TAG_FAILURE, result.error)
                mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
                return
            mlflow.log_metrics(result.metrics)
            signature = infer_signature(x_train, np.asarray(predict(x_train.head(5)), dtype="float64"))
            example = x_train.head(5)
            if candidate.is_pyfunc:
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=str(MODEL_CODE), model_config=dict(candidate.params),
                    signature=signature, input_example=example,
                    pip_requirements=[f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}",
                                      f"pandas=={pd.__version__}"])
            else:
                info = mlflow.sklearn.log_model(
                    model, name="model", signature=signature, input_example=example,
                    pip_requirements=[f"mlflow=={mlflow.__version__}",
                                      *mlflow.sklearn.get_default_pip_requirements()])
            result.model_uri, result.model_id = info.model_uri, info.model_id
            result.status = "fitted"
    except Exception as exc:  # noqa: BLE001 - logging failed: the run is marked FAILED
        result.status, result.error = "failed", f"{type(exc).__name__}: {_one_line(exc)}"
        if result.run_id:
            _mark_failed(result.run_id, result.error)
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


def _mark_failed(run_id: str, reason: str) -> None:
    client = MlflowClient()
    try:
        client.set_tag(run_id, TAG_FAILURE, reason)
        client.set_terminated(run_id, status="FAILED")
    except Exception:  # noqa: BLE001, S110 - best effort; the command fails anyway
        pass


def _run_tags(result: CandidateResult, data: TrainingData) -> dict[str, str]:
    return {
        registry.TAG_TARGET: data.target,
        registry.TAG_FEATURES: ",".join(data.features),
        registry.TAG_FINGERPRINT: data.fingerprint,
        registry.TAG_CODE_VERSION: code_version(),
        registry.TAG_CANDIDATE: result.candidate_id,
        registry.TAG_KIND: result.candidate.kind,
        "driftline.data_source": data.source[:500],
        "driftline.registered_model": result.candidate.model_name,
    }


def _log_reference(run, data: TrainingData) -> None:  # noqa: ANN001 - mlflow ActiveRun
    """The contract the monitor reads: parquet artifacts + dataset inputs whose source is their URI."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "reference"
        folder.mkdir()
        data.train.to_parquet(folder / "train.parquet", index=False)
        data.holdout.to_parquet(folder / "holdout.parquet", index=False)
        mlflow.log_artifacts(str(folder), artifact_path="reference")
    for frame, artifact, context, name in ((data.train, TRAIN_ARTIFACT, "training", "train"),
                                           (data.holdout, HOLDOUT_ARTIFACT, "evaluation", "holdout")):
        source = artifact_source(f"{run.info.artifact_uri}/{artifact}")
        # The run id in the name: MLflow shares one dataset record per (experiment, name, digest),
        # which would point every identical table at the first run's artifact.
        dataset = mlflow.data.from_pandas(frame, source=source, targets=data.target,
                                          name=f"{name}-{run.info.run_id[:12]}")
        mlflow.log_input(dataset, context=context)


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


def _register(client: MlflowClient, result: CandidateResult, data: TrainingData) -> None:
    tags = {
        registry.TAG_TARGET: data.target,
        registry.TAG_FEATURES: ",".join(data.features),
        registry.TAG_FINGERPRINT: data.fingerprint,
        registry.TAG_CODE_VERSION: code_version(),
        registry.TAG_CANDIDATE: result.candidate_id,
        registry.TAG_KIND: result.candidate.kind,
        registry.TAG_PARAMS: json.dumps(result.candidate.params, sort_keys=True, default=str),
        registry.TAG_HOLDOUT_MSE: repr(result.mse),
    }
    name = result.candidate.model_name
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(name, source=result.model_uri, run_id=result.run_id, tags=tags,
                                          model_id=result.model_id)
    result.version = str(version.version)


def _select(client: MlflowClient, name: str, group: list[CandidateResult], data: TrainingData,
            margin: float, actor: str) -> Decision:
    winner = min(group, key=lambda r: (r.mse, int(r.version)))
    x_hold, y_hold = data.holdout[list(data.features)], data.holdout[data.target].to_numpy()
    champion = registry.alias_version(client, name, registry.CHAMPION)
    if champion is not None and champion.version == winner.version:
        return Decision(name, winner, champion.version, winner.mse, False,
                        f"v{winner.version} is already champion")
    mv = client.get_model_version(name, winner.version)
    if mv.tags.get(registry.TAG_ROLLED_BACK):
        return Decision(name, winner, champion.version if champion else None, None, False,
                        f"v{winner.version} was rolled back at {mv.tags[registry.TAG_ROLLED_BACK]}; "
                        "promote it explicitly to make it champion again")
    champion_mse = None
    if champion is not None:
        champion_mse = _champion_mse(name, champion, data, x_hold, y_hold)
        threshold = champion_mse * (1.0 - margin)
        if not winner.mse < threshold:
            return Decision(name, winner, champion.version, champion_mse, False,
                            f"v{winner.version} mse {winner.mse:.4f} does not beat champion "
                            f"v{champion.version} mse {champion_mse:.4f} by {margin:.1%}")
    registry.predict_version(name, winner.version, x_hold)
    if champion is None:
        reason = f"train: first champion, hold-out mse {winner.mse:.4f}"
    else:
        reason = (f"train: hold-out mse {winner.mse:.4f} beats champion v{champion.version} "
                  f"({champion_mse:.4f}) by more than {margin:.1%}")
    registry.make_champion(client, name, winner.version, actor, reason)
    return Decision(name, winner, champion.version if champion else None, champion_mse, True, reason)


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
