"""Everything the monitor asks of MLflow: champions, model versions, loaded models, reference data,
and the `monitoring` experiment's runs.

Aliases are resolved at every evaluation (so a moved champion is followed without a restart), but a
loaded model is cached per (name, version): a version's artifacts never change, so they are downloaded once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

EXPERIMENT = "monitoring"
TARGET_TAG = "driftline.target"
FEATURES_TAG = "driftline.features"
TRAIN_ARTIFACT = "reference/train.parquet"
HOLDOUT_ARTIFACT = "reference/holdout.parquet"


class TrackingUnavailable(Exception):
    """The tracking server did not answer (or answered with a server error); retry later."""


class ModelNotFound(Exception):
    """The model (or its alias) is not in the registry."""


@dataclass(frozen=True)
class InputColumn:
    name: str
    type: str  # MLflow schema type name: double, float, long, integer, boolean, string, …


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

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.pyfunc.predict(frame[[c.name for c in self.inputs]] if self.inputs else frame)


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

    def __init__(self, tracking_uri: str, champion_alias: str = "champion", max_models: int = 64) -> None:
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
        names: list[str] = []
        token = None
        while True:
            page = self._call("listing registered models", self.client.search_registered_models,
                              max_results=200, page_token=token)
            names += [m.name for m in page if self.champion_alias in (m.aliases or {})]
            token = page.token
            if not token:
                return sorted(names)

    def resolve(self, name: str, alias: str | None = None) -> str:
        """The version the alias points at now (asked every time: aliases move)."""
        alias = alias or self.champion_alias
        version = self._call(f"resolving {name}@{alias}", self.client.get_model_version_by_alias, name, alias)
        return str(version.version)

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
    def load(self, name: str, version: str) -> LoadedModel:
        """The loaded model version, from the cache when this process has loaded it before."""
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
            model = self._load_uncached(name, version)
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

    def _load_uncached(self, name: str, version: str) -> LoadedModel:
        import mlflow.pyfunc

        started = time.perf_counter()
        mv = self._call(f"reading {name} version {version}", self.client.get_model_version, name, version)
        pyfunc = self._call(f"loading {name} version {version}", mlflow.pyfunc.load_model,
                            f"models:/{name}/{version}")
        schema = pyfunc.metadata.get_input_schema()
        inputs = [InputColumn(c.name, _type_name(c.type)) for c in schema.inputs] if schema else []
        tags = mv.tags or {}
        features = [f.strip() for f in tags.get(FEATURES_TAG, "").split(",") if f.strip()]
        if not features:
            features = [c.name for c in inputs]
        target = tags.get(TARGET_TAG, "y")
        log.info("loaded %s version %s in %.2f s", name, version, time.perf_counter() - started)
        return LoadedModel(name=name, version=version, run_id=mv.run_id, pyfunc=pyfunc,
                           inputs=inputs or [InputColumn(f, "double") for f in features],
                           target=target, features=features)

    def reference_frames(self, model: LoadedModel) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """The training run's reference data: train (required) and holdout (optional)."""
        if not model.run_id:
            raise ValueError(f"{model.name} version {model.version} has no training run to read reference "
                             "data from; register versions from a run that logs reference/train.parquet")
        with tempfile.TemporaryDirectory(prefix="driftline-ref-") as tmp:
            train_path = self._call("downloading reference data", self.client.download_artifacts,
                                    model.run_id, TRAIN_ARTIFACT, tmp)
            train = pd.read_parquet(train_path)
            try:
                holdout_path = self.client.download_artifacts(model.run_id, HOLDOUT_ARTIFACT, tmp)
                holdout = pd.read_parquet(holdout_path)
            except Exception as exc:  # noqa: BLE001 - holdout is optional
                if _is_unavailable(exc):
                    raise TrackingUnavailable(f"downloading holdout data: {_short(exc)}") from exc
                holdout = None
        return train, holdout

    # --- monitoring runs -------------------------------------------------------------------------
    def log_evaluation(self, *, model: str, version: str, batch_id: str, metrics: dict[str, float],
                       result: dict[str, Any], tags: dict[str, str], run_key: str | None = None) -> str:
        """One run in the `monitoring` experiment: metrics plus the full result as evaluation.json.

        With ``run_key`` (the outbox's), a run already carrying that key is finished or reused instead
        of a second one being created: a crash between creating and finishing a run is repaired here."""
        from mlflow.entities import Metric

        experiment_id = self._experiment()
        run_tags = {"driftline.model": model, "driftline.model_version": version,
                    "driftline.batch_id": batch_id, "mlflow.runName": f"{model}-v{version}-{batch_id}",
                    **tags}
        existing = self.find_runs(run_key) if run_key else []
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


def _type_name(dtype: Any) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"
