"""The candidates a `train` run fits: exercise 1's Lasso grid, exercise 2's custom model, and any
scikit-learn estimators listed in a YAML config.

Config file (TRAINER_CONFIG_FILE or --config):

    models:
      - name: ridge_model                       # registered model name
        estimator: sklearn.linear_model.Ridge   # import path of a fit/predict class
        params: {alpha: 1.0}
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainer.errors import ConfigError

DEFAULT_ALPHAS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)
LASSO_MODEL_NAME = "lasso_regression_model"
CUSTOM_MODEL_NAME = "custom_linear_model"
CUSTOM_KIND = "pyfunc:trainer.first_feature_model.FirstFeatureModel"


@dataclass(frozen=True)
class Candidate:
    """One model to fit: its registered name, kind (estimator import path or pyfunc), params."""

    model_name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def is_pyfunc(self) -> bool:
        return self.kind.startswith("pyfunc:")

    @property
    def display(self) -> str:
        return self.label or self.kind.rsplit(".", 1)[-1]

    def params_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items()) or "-"

    def identity(self, data_fingerprint: str, split: dict[str, Any]) -> str:
        """Same data + params + kind + split -> same id: the key for reusing a registered version."""
        blob = json.dumps({"kind": self.kind, "params": self.params, "data": data_fingerprint,
                           "split": split}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def build(self) -> Any:
        """A fresh unfitted estimator (scikit-learn kinds only)."""
        if self.is_pyfunc:
            raise TypeError("pyfunc candidates are not built as estimators")
        module_name, _, class_name = self.kind.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(**self.params)


def lasso_grid(alphas: tuple[float, ...] = DEFAULT_ALPHAS,
               model_name: str = LASSO_MODEL_NAME) -> list[Candidate]:
    """Exercise 1: Lasso(alpha=..., max_iter=1000, random_state=8) for each alpha."""
    return [Candidate(model_name, "sklearn.linear_model.Lasso",
                      {"alpha": float(a), "max_iter": 1000, "random_state": 8}, label="Lasso")
            for a in alphas]


def custom_model(offset: float = 0.0, model_name: str = CUSTOM_MODEL_NAME) -> Candidate:
    """Exercise 2: f(x) = x0 + offset."""
    return Candidate(model_name, CUSTOM_KIND, {"offset": float(offset)}, label="FirstFeatureModel")


class _ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    estimator: str = Field(min_length=3)
    params: dict[str, Any] = Field(default_factory=dict)


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[_ModelEntry] = Field(default_factory=list)


def load_config(path: Path) -> list[Candidate]:
    """Candidates from a YAML config; every estimator must import and have fit/predict."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist",
                          "check --config or TRAINER_CONFIG_FILE") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path} ({str(exc).splitlines()[0]})",
                          "fix the YAML syntax") from exc
    try:
        config = _ConfigFile.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid config file {path} ({problems})",
                          "list models as {name, estimator, params}") from exc
    candidates = []
    for entry in config.models:
        module_name, _, class_name = entry.estimator.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"estimator {entry.estimator!r} in {path} cannot be imported",
                              "give a full import path such as sklearn.linear_model.Ridge") from exc
        if not (hasattr(cls, "fit") and hasattr(cls, "predict")):
            raise ConfigError(f"{entry.estimator!r} in {path} has no fit/predict",
                              "give a scikit-learn style regressor")
        candidates.append(Candidate(entry.name, entry.estimator, dict(entry.params), label=class_name))
    return candidates


def parse_alphas(text: str) -> tuple[float, ...]:
    """'0.1,0.5' -> (0.1, 0.5); each alpha must be a positive number."""
    try:
        alphas = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"--alphas {text!r} is not a comma-separated list of numbers",
                          "use e.g. --alphas 0.1,0.5,1.0") from exc
    if not alphas or any(not a > 0 for a in alphas):
        raise ConfigError(f"--alphas {text!r} must list positive numbers", "use e.g. --alphas 0.1,0.5,1.0")
    return alphas
