"""Everything the monitor asks of MLflow: champions, model versions, loaded models, reference data,
and the `monitoring` experiment's runs.

Aliases are resolved once per scheduled round for all models (one listing) and at every push or
manual evaluation (so a moved champion is followed without a restart), but a loaded model is cached
per (name, version): a version's artifacts never change, so they are downloaded once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.columns import select_columns

log = logging.getLogger(__name__)
# Inputs go to some estimators as an array whose columns were checked against the fitted names at
# load (``_takes_arrays``): scikit-learn's per-call reminder that the array has no names is noise.
warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)

EXPERIMENT = "monitoring"
TARGET_TAG = "driftline.target"
FEATURES_TAG = "driftline.features"
TASK_TAG = "driftline.task"
MONITOR_TAG = "driftline.monitor"  # registered-model tag; "false" opts a champion out of monitoring
DEFAULT_TARGET = "y"
TASKS = ("regression", "classification")
TRAIN_ARTIFACT = "reference/train.parquet"
HOLDOUT_ARTIFACT = "reference/holdout.parquet"


# A registered model's aliases ({alias: version}) and tags, as one listing or one read answers them.
Listed = tuple[dict[str, str], dict[str, str]]


class TrackingUnavailable(Exception):
    """The tracking server did not answer (or answered with a server error); retry later."""


class ModelNotFound(Exception):
    """The model (or its alias) is not in the registry."""


@dataclass(frozen=True)
class InputColumn:
    name: str
    type: str  # MLflow schema type name: double, float, long, integer, boolean, string, …


@dataclass(frozen=True)
class RunDataset:
    """One dataset input of the version's training run, as MLflow recorded it (not downloaded yet)."""

    name: str
    context: str  # training | evaluation | … ("" when the run gave none)
    columns: tuple[str, ...]
    entity: Any  # mlflow.entities.Dataset


@dataclass
class ReferenceData:
    """Reference rows for a version and where they came from (recorded with every evaluation)."""

    train: pd.DataFrame
    holdout: pd.DataFrame | None
    kind: str  # artifact | dataset | upload | window
    source: str  # human-readable: which artifact, dataset, upload or window


@dataclass
class LoadedModel:
    """A model version ready to predict, with what the monitor needs to know about it."""

    name: str
    version: str
    run_id: str | None
    pyfunc: Any
    inputs: list[InputColumn]
    target: str
    features: list[str]
    target_from: str = "default"  # dataset | tag | config | default
    task: str = "regression"  # regression | classification
    classes: list[Any] | None = None  # classification: the model's classes, in predict_proba's order
    proba: Any = None  # classification: a callable frame -> (n, k) probabilities, when the flavour has one
    datasets: list[RunDataset] = field(default_factory=list)
    # The flavour's own predict, when MLflow's pyfunc would call exactly it on exactly these inputs
    # (``_direct_predict``); used only for all-float64 inputs, where MLflow's schema check is a no-op.
    direct: Any = None
    # The estimator reads its inputs as one array and checks their names only (``_takes_arrays``):
    # float64 inputs go to it as that array, in the order it was fitted on.
    as_array: bool = False

    def predict(self, frame: pd.DataFrame) -> Any:
        inputs = self._inputs_of(frame)
        if self.direct is not None and _all_float64(inputs):
            return self.direct(inputs.to_numpy() if self.as_array else inputs)
        return self.pyfunc.predict(inputs)

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        if self.proba is None:
            return None
        inputs = self._inputs_of(frame)
        return self.proba(inputs.to_numpy() if self.as_array and _all_float64(inputs) else inputs)

    def _inputs_of(self, frame: pd.DataFrame) -> pd.DataFrame:
        return select_columns(frame, [c.name for c in self.inputs]) if self.inputs else frame


def configure_client_env() -> None:
    """Bound MLflow's own HTTP retries: its defaults retry for minutes, which would stall a whole
    scheduler round behind a down server. The monitor retries with its own backoff instead."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    # MLflow prints a "View run ... at" line to stdout per run: noise in the log and in CLI output.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _is_unavailable(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    text = str(exc)
    if isinstance(exc, MlflowException):
        code = getattr(exc, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return False
        return ("Max retries" in text or "Connection" in text or "API request" in text
                or code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"))
    return isinstance(exc, OSError | ConnectionError | TimeoutError) or "Connection" in text


class Registry:
    """MLflow access for one tracking server. Thread-safe: the client is stateless and caches lock."""

    def __init__(self, tracking_uri: str, champion_alias: str = "champion", max_models: int = 1024) -> None:
        configure_client_env()
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.champion_alias = champion_alias
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._max_models = max_models
        self._lock = threading.Lock()
        self._load_locks: dict[tuple[str, str], threading.Lock] = {}
        self._experiment_id: str | None = None

    def _call(self, what: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202 - thin wrapper
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if _is_unavailable(exc):
                raise TrackingUnavailable(f"tracking server {self.tracking_uri} unavailable while {what}: "
                                          f"{_short(exc)}") from exc
            from mlflow.exceptions import MlflowException

            if isinstance(exc, MlflowException) and exc.error_code in (
                    "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                raise ModelNotFound(f"{what}: {_short(exc)}") from exc
            raise

    # --- discovery and aliases -------------------------------------------------------------------
    def champions(self) -> list[str]:
        """Every registered model that carries the champion alias, by name."""
        versions, opted = self.alias_versions()
        return sorted(set(versions) - opted)

    def alias_versions(self, alias: str | None = None) -> tuple[dict[str, str], set[str]]:
        """The version ``alias`` points at for every registered model that has it, and the names
        opted out of monitoring: one paged listing (1,000 models a page) instead of one alias
        lookup per model, which was most of a warm round's registry time."""
        return versions_of(self.listing(), alias or self.champion_alias)

    def listing(self) -> dict[str, Listed]:
        """Every registered model's aliases ({alias: version}) and tags, as ``model_aliases`` answers
        for one model: one paged listing (1,000 models a page) for a whole round."""
        found: dict[str, Listed] = {}
        token = None
        while True:
            page = self._call("listing registered models", self.client.search_registered_models,
                              max_results=1000, page_token=token)
            for model in page:
                found[model.name] = ({k: str(v) for k, v in (model.aliases or {}).items()},
                                     dict(model.tags or {}))
            token = page.token
            if not token:
                return found

    def resolve(self, name: str, alias: str | None = None) -> str:
        """The version the alias points at now (asked every time: aliases move)."""
        alias = alias or self.champion_alias
        version = self._call(f"resolving {name}@{alias}", self.client.get_model_version_by_alias, name, alias)
        return str(version.version)

    def model_aliases(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """Every alias of the registered model ({alias: version}) and its tags, in one round trip."""
        found = self._call(f"reading {name}", self.client.get_registered_model, name)
        return {k: str(v) for k, v in (found.aliases or {}).items()}, dict(found.tags or {})

    def ping(self, timeout: float = 3.0) -> str | None:
        """None when the tracking server answers /health, else the reason."""
        import urllib.request

        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - configured URL
                return None if resp.status == 200 else f"tracking server {url} answered {resp.status}"
        except Exception as exc:  # noqa: BLE001 - every failure is a reason
            return f"tracking server {url} unreachable: {_short(exc)}"

    # --- model versions --------------------------------------------------------------------------
    def load(self, name: str, version: str, *, target: str | None = None,
             task: str | None = None) -> LoadedModel:
        """The loaded model version, from the cache when this process has loaded it before.

        ``target`` and ``task`` are the config file's overrides for this model (see ``_load_uncached``).
        """
        key = (name, version)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:  # one download per version even when several threads ask at once
            with self._lock:
                if key in self._models:
                    return self._models[key]
            model = self._load_uncached(name, version, target, task)
            with self._lock:
                self._models[key] = model
                while len(self._models) > self._max_models:
                    self._models.popitem(last=False)
            return model

    def cached_versions(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._models)

    def clear_cache(self) -> None:
        with self._lock:
            self._models.clear()

    def _load_uncached(self, name: str, version: str, config_target: str | None = None,
                       config_task: str | None = None) -> LoadedModel:
        """Load the version and work out what it predicts from what MLflow recorded.

        Target: the training dataset's one column that is not a model input (MLflow 3 does not keep
        ``from_pandas(targets=...)`` on the logged dataset, only its schema), then the version tag
        ``driftline.target``, then the config file, then ``y``. Inputs: the signature, else the
        ``driftline.features`` tag, else (decided at profile time) the reference columns. Task: the
        config (or the ``driftline.task`` tag) wins; else a model with ``classes_`` (sklearn flavour)
        or string/boolean outputs in its signature is a classifier.
        """
        import mlflow.pyfunc

        started = time.perf_counter()
        mv = self._call(f"reading {name} version {version}", self.client.get_model_version, name, version)
        pyfunc = self._call(f"loading {name} version {version}", mlflow.pyfunc.load_model,
                            f"models:/{name}/{version}")
        schema = pyfunc.metadata.get_input_schema()
        inputs = [InputColumn(c.name, _type_name(c.type)) for c in schema.inputs
                  if getattr(c, "name", None)] if schema else []
        tags = mv.tags or {}
        features = [f.strip() for f in tags.get(FEATURES_TAG, "").split(",") if f.strip()]
        if not features:
            features = [c.name for c in inputs]
        datasets = self._run_datasets(mv.run_id)
        input_names = {c.name for c in inputs} | set(features)
        target, target_from = DEFAULT_TARGET, "default"
        from_dataset = _target_from_datasets(datasets, input_names)
        if from_dataset:
            target, target_from = from_dataset, "dataset"
        elif tags.get(TARGET_TAG):
            target, target_from = tags[TARGET_TAG], "tag"
        elif config_target:
            target, target_from = config_target, "config"
        raw = _raw_model(pyfunc)
        classes = getattr(raw, "classes_", None)
        task = config_task or tags.get(TASK_TAG)
        if task not in TASKS:
            task = "classification" if classes is not None or _outputs_are_labels(pyfunc) else "regression"
        proba = None
        if task == "classification" and raw is not None and hasattr(raw, "predict_proba") \
                and classes is not None:
            proba = raw.predict_proba
        direct = _direct_predict(pyfunc, raw, inputs, schema)
        model_inputs = inputs or [InputColumn(f, "double") for f in features]
        log.info("loaded %s version %s in %.2f s (%s, target %r from %s)", name, version,
                 time.perf_counter() - started, task, target, target_from)
        return LoadedModel(name=name, version=version, run_id=mv.run_id, pyfunc=pyfunc,
                           inputs=model_inputs,
                           target=target, features=features, target_from=target_from, task=task,
                           classes=None if classes is None else list(classes), proba=proba,
                           datasets=datasets, direct=direct,
                           as_array=_takes_arrays(raw, [c.name for c in model_inputs]))

    def _run_datasets(self, run_id: str | None) -> list[RunDataset]:
        if not run_id:
            return []
        try:
            run = self._call("reading the training run", self.client.get_run, run_id)
        except ModelNotFound:
            return []  # the run was deleted: the version still predicts
        found = []
        for item in (run.inputs.dataset_inputs if run.inputs else []) or []:
            context = {t.key: t.value for t in item.tags or []}.get("mlflow.data.context", "")
            found.append(RunDataset(name=item.dataset.name, context=context,
                                    columns=tuple(_schema_columns(item.dataset.schema)), entity=item.dataset))
        return found

    def reference_frames(self, model: LoadedModel) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """The training run's reference data: train (required) and holdout (optional)."""
        found = self.mlflow_reference(model)
        if found is None:
            raise ValueError(f"{model.name} version {model.version} has no reference data in MLflow")
        return found.train, found.holdout

    def mlflow_reference(self, model: LoadedModel) -> ReferenceData | None:
        """Reference data recorded in MLflow, in order: Driftline's ``reference/train.parquet``
        artifact (+ holdout), else the run's dataset inputs whose source loads (training context
        first; an evaluation-context dataset is the holdout). None when neither exists."""
        if not model.run_id:
            return None
        found = self._driftline_artifact(model)
        if found is not None:
            return found
        return self._dataset_inputs(model)

    def _driftline_artifact(self, model: LoadedModel) -> ReferenceData | None:
        with tempfile.TemporaryDirectory(prefix="driftline-ref-") as tmp:
            try:
                train_path = self.client.download_artifacts(model.run_id, TRAIN_ARTIFACT, tmp)
            except Exception as exc:  # noqa: BLE001 - absent for models not registered by the trainer
                if _looks_down(exc):
                    raise TrackingUnavailable(f"downloading reference data: {_short(exc)}") from exc
                return None
            train = pd.read_parquet(train_path)
            try:
                holdout_path = self.client.download_artifacts(model.run_id, HOLDOUT_ARTIFACT, tmp)
                holdout = pd.read_parquet(holdout_path)
            except Exception as exc:  # noqa: BLE001 - holdout is optional
                if _looks_down(exc):
                    raise TrackingUnavailable(f"downloading holdout data: {_short(exc)}") from exc
                holdout = None
        return ReferenceData(train, holdout, "artifact", f"run {model.run_id} artifact {TRAIN_ARTIFACT}")

    def _dataset_inputs(self, model: LoadedModel) -> ReferenceData | None:
        ordered = sorted(model.datasets, key=lambda d: {"training": 0, "": 1}.get(d.context, 2))
        train = holdout = None
        used: list[str] = []
        for dataset in ordered:
            if train is not None and dataset.context != "evaluation":
                continue
            try:
                frame = self._load_dataset(dataset)
            except TrackingUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. a code source (from_pandas without source=)
                if _looks_down(exc):
                    raise TrackingUnavailable(f"downloading dataset {dataset.name}: {_short(exc)}") from exc
                log.info("%s v%s: dataset %r (%s) does not load: %s", model.name, model.version,
                         dataset.name, dataset.context or "no context", _short(exc, 160))
                continue
            if train is None:
                train = frame
                used.append(f"{dataset.name} ({dataset.context or 'no context'})")
            elif holdout is None:
                holdout = frame
                used.append(f"{dataset.name} (evaluation)")
        if train is None:
            return None
        return ReferenceData(train, holdout, "dataset",
                             f"run {model.run_id} dataset input {' + '.join(used)}")

    def _load_dataset(self, dataset: RunDataset) -> pd.DataFrame:
        """Download a logged dataset through its source: artifact URIs go through the tracking server
        (``mlflow-artifacts:``, ``runs:``), anything else through ``get_source(...).load()`` (S3, HTTP,
        files)."""
        import mlflow.artifacts
        import mlflow.data

        entity = dataset.entity
        try:
            uri = json.loads(entity.source).get("uri") or json.loads(entity.source).get("url")
        except (TypeError, ValueError, AttributeError):
            uri = None
        with tempfile.TemporaryDirectory(prefix="driftline-ds-") as tmp:
            if isinstance(uri, str) and uri.split(":", 1)[0] in ("mlflow-artifacts", "runs", "models"):
                path = self._call(f"downloading dataset {dataset.name}", mlflow.artifacts.download_artifacts,
                                  artifact_uri=uri, dst_path=tmp, tracking_uri=self.tracking_uri)
            else:
                source = mlflow.data.get_source(entity)
                try:
                    path = source.load(dst_path=tmp)
                except TypeError:
                    path = source.load()
            return read_table(str(path))

    # --- monitoring runs -------------------------------------------------------------------------
    def log_evaluation(self, *, model: str, version: str, batch_id: str, metrics: dict[str, float],
                       result: dict[str, Any], tags: dict[str, str], run_key: str | None = None,
                       search: bool = True) -> str:
        """One run in the `monitoring` experiment: metrics plus the full result as evaluation.json.

        Four tracking calls: ``create_run`` with every tag, one ``log_batch`` with every metric, the
        evaluation.json upload, ``set_terminated``. With ``run_key`` (the outbox's) and ``search``, a
        run already carrying that key is finished or reused instead of a second one being created:
        a crash between creating and finishing a run is repaired here. The outbox asks for the search
        only when an earlier attempt may have created the run (``monitoring_run_starts``): it is a
        query over the whole experiment, the costliest of the calls as the experiment grows."""
        from mlflow.entities import Metric

        experiment_id = self._experiment()
        run_tags = {"driftline.model": model, "driftline.model_version": version,
                    "driftline.batch_id": batch_id, "mlflow.runName": f"{model}-v{version}-{batch_id}",
                    **tags}
        existing = self.find_runs(run_key) if run_key and search else []
        finished = [r for r in existing if r.info.status == "FINISHED"]
        if finished:
            for extra in existing:
                if extra.info.run_id != finished[0].info.run_id:
                    self.delete_run(extra.info.run_id)
            return finished[0].info.run_id
        if existing:
            run_id = existing[0].info.run_id  # left RUNNING (or FAILED) by a crash: log into it again
            for extra in existing[1:]:
                self.delete_run(extra.info.run_id)
        else:
            if run_key:
                run_tags["driftline.run_key"] = run_key
            run = self._call("creating a monitoring run", self.client.create_run, experiment_id,
                             tags=run_tags)
            run_id = run.info.run_id
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        try:
            if batch:
                self._call("logging metrics", self.client.log_batch, run_id, metrics=batch)
            self._call("logging evaluation.json", self.client.log_text, run_id,
                       json.dumps(result, indent=1, default=str), "evaluation.json")
            self._call("closing the run", self.client.set_terminated, run_id, "FINISHED")
        except Exception:
            if not run_key:
                # A half-logged run is worse than none: mark it failed so nobody reads it as a result.
                with contextlib.suppress(Exception):  # best effort: the server may be the problem
                    self.client.set_terminated(run_id, "FAILED")
            raise  # with a run key the outbox retries and finishes this same run
        return run_id

    def log_late(self, *, run_id: str, metrics: dict[str, float], result: dict[str, Any], key: str) -> str:
        """Figures known only when the labels came, into the evaluation's (finished) run, once.

        ``labels.json`` is written first (a rewrite is harmless), then the metrics and the tag
        ``driftline.labels_key`` in one ``log_batch``: a retry that finds the tag logs nothing again."""
        from mlflow.entities import Metric, RunTag

        run = self._call("reading a monitoring run", self.client.get_run, run_id)
        if run.data.tags.get("driftline.labels_key") == key:
            return run_id
        self._call("logging labels.json", self.client.log_text, run_id,
                   json.dumps(result, indent=1, default=str), "labels.json")
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        self._call("logging the labels' metrics", self.client.log_batch, run_id, metrics=batch,
                   tags=[RunTag("driftline.labels_key", key), RunTag("driftline.labels", "received")])
        return run_id

    def find_runs(self, run_key: str) -> list[Any]:
        """Runs of the monitoring experiment tagged with this outbox key (normally none or one)."""
        experiment_id = self._experiment()
        return list(self._call("finding a monitoring run", self.client.search_runs, [experiment_id],
                               filter_string=f"tags.`driftline.run_key` = '{run_key}'", max_results=10))

    def delete_run(self, run_id: str) -> None:
        try:
            self.client.delete_run(run_id)
        except Exception:  # noqa: BLE001 - cleanup after losing a race; harmless if it fails
            log.warning("could not delete duplicate monitoring run %s", run_id)

    def _experiment(self) -> str:
        if self._experiment_id is None:
            found = self._call("finding the monitoring experiment", self.client.get_experiment_by_name,
                               EXPERIMENT)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(EXPERIMENT)
                except Exception:  # noqa: BLE001 - another process created it first
                    found = self._call("finding the monitoring experiment",
                                       self.client.get_experiment_by_name, EXPERIMENT)
                    if found is None:
                        raise
                    self._experiment_id = found.experiment_id
            else:
                self._experiment_id = found.experiment_id
        return self._experiment_id


def _looks_down(exc: BaseException) -> bool:
    """A download that failed because a server is down (retry later), not because the file is absent:
    "no reference here" is remembered per process, an outage must not be."""
    text = f"{type(exc).__name__} {exc}"
    return any(word in text for word in ("Max retries", "Connection refused", "ConnectionError",
                                         "timed out", "Timeout", " 502", " 503", " 504"))


def versions_of(listing: dict[str, Listed], alias: str) -> tuple[dict[str, str], set[str]]:
    """From a ``Registry.listing``: the version ``alias`` points at per model, and the opted-out names."""
    versions = {name: aliases[alias] for name, (aliases, _tags) in listing.items() if alias in aliases}
    opted = {name for name, (_aliases, tags) in listing.items() if opted_out(tags)}
    return versions, opted


def opted_out(tags: dict[str, str]) -> bool:
    return str(tags.get(MONITOR_TAG, "")).strip().lower() in ("false", "0", "no", "off")


def read_table(path: str) -> pd.DataFrame:
    """A downloaded dataset file (or a folder of them) as a frame: Parquet or CSV by name, else sniffed."""
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
        if not files:
            raise ValueError(f"dataset folder {path} is empty")
        return pd.concat([read_table(str(f)) for f in files], ignore_index=True)
    suffix = target.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(target)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(target)
    if suffix == ".json":
        return pd.read_json(target)
    try:
        return pd.read_parquet(target)
    except Exception:  # noqa: BLE001 - not parquet: try CSV
        return pd.read_csv(target)


def _schema_columns(schema_json: str | None) -> list[str]:
    if not schema_json:
        return []
    try:
        spec = json.loads(schema_json).get("mlflow_colspec") or []
    except (TypeError, ValueError, AttributeError):
        return []
    return [c["name"] for c in spec if isinstance(c, dict) and c.get("name")]


def _target_from_datasets(datasets: list[RunDataset], inputs: set[str]) -> str | None:
    """The training dataset's single column that is not a model input: the target it was logged with."""
    if not inputs:
        return None
    for dataset in sorted(datasets, key=lambda d: d.context != "training"):
        extra = [c for c in dataset.columns if c not in inputs]
        if len(extra) == 1:
            return extra[0]
    return None


def _raw_model(pyfunc: Any) -> Any:
    """The flavour's own model object (an sklearn estimator, …) when the flavour exposes one."""
    try:
        return pyfunc.get_raw_model()
    except Exception:  # noqa: BLE001 - custom pyfunc models have none
        return getattr(getattr(pyfunc, "_model_impl", None), "sklearn_model", None)


def _direct_predict(pyfunc: Any, raw: Any, inputs: list[InputColumn], schema: Any) -> Any:
    """The sklearn estimator's ``predict`` when ``pyfunc.predict`` would only check float64 columns
    against an all-``double`` signature and then call it: that check (MLflow's schema enforcement,
    which rebuilds the frame column by column) was a twentieth of a 100-row push's CPU. The monitor
    validates every batch against the signature first (monitor/validation.py), so nothing is lost;
    anything else (another flavour, another predict function, params, typed or tensor inputs) keeps
    MLflow's path. None when the shortcut does not apply."""
    flavor = (pyfunc.metadata.flavors or {}).get("python_function") or {}
    if (flavor.get("loader_module") != "mlflow.sklearn" or flavor.get("predict_fn", "predict") != "predict"
            or raw is None or not callable(getattr(raw, "predict", None))
            or pyfunc.metadata.get_params_schema() is not None):
        return None
    if schema is not None and (not inputs or len(inputs) != len(schema.inputs)
                               or any(c.type != "double" for c in inputs)):
        return None
    return raw.predict


# Estimators whose predict reads the validated array and uses the column names only to check them
# (no pipelines, column transformers or meta-estimators, whose steps may select columns by name).
_ARRAY_MODULES = ("sklearn.linear_model.", "sklearn.tree.", "sklearn.neighbors.", "sklearn.svm.",
                  "sklearn.kernel_ridge", "sklearn.naive_bayes", "sklearn.ensemble._forest",
                  "sklearn.ensemble._gb", "sklearn.ensemble._hist_gradient_boosting.")


def _takes_arrays(raw: Any, names: list[str]) -> bool:
    """Whether ``raw`` may be given its float64 inputs as a numpy array in the order ``names``.

    scikit-learn checks a DataFrame's column names against ``feature_names_in_`` on every call and
    converts it to an array: on a 100-row push that was 0.7 ms of the model's 0.9 ms. When the names
    are checked here once (the fitted names are the inputs, in that order) the array it would build is
    passed instead; the predictions are bit-identical (tests/monitor/test_direct_predict.py)."""
    if raw is None or not names or not type(raw).__module__.startswith(_ARRAY_MODULES):
        return False
    fitted = getattr(raw, "feature_names_in_", None)
    if fitted is not None:
        return [str(n) for n in fitted] == list(names)
    return getattr(raw, "n_features_in_", None) == len(names)


def _all_float64(frame: pd.DataFrame) -> bool:
    return all(dtype == np.float64 for dtype in frame.dtypes)


def _outputs_are_labels(pyfunc: Any) -> bool:
    schema = pyfunc.metadata.get_output_schema() if pyfunc.metadata else None
    if schema is None:
        return False
    try:
        types = [_type_name(t) for t in schema.input_types()]
    except Exception:  # noqa: BLE001 - tensor schemas
        return False
    return bool(types) and all(t in ("string", "boolean") for t in types)


def _type_name(dtype: Any) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"
