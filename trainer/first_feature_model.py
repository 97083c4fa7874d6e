"""Exercise 2's custom model, logged as MLflow "model from code": predicts f(x) = x0 + offset.

Self-contained on purpose (mlflow, numpy, pandas only): MLflow stores this file with the model,
so any MLflow client can load `models:/custom_linear_model/N` without the trainer installed.
Unlike the course's version, it accepts any number of rows and returns one prediction per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class FirstFeatureModel(PythonModel):
    """f(x) = first feature + offset; the offset comes from the logged model_config."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = float(offset)

    def load_context(self, context) -> None:  # noqa: ANN001 - MLflow's PythonModelContext
        config = getattr(context, "model_config", None) or {}
        self.offset = float(config.get("offset", self.offset))

    # The DataFrame hint is what pyfunc passes (after signature checks); arrays work when called directly.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # noqa: ANN001
        if isinstance(model_input, pd.DataFrame):
            first = model_input.iloc[:, 0].to_numpy(dtype="float64")
        else:
            values = np.asarray(model_input, dtype="float64")
            first = values.reshape(1, -1)[:, 0] if values.ndim == 1 else values.reshape(len(values), -1)[:, 0]
        return first + self.offset


set_model(FirstFeatureModel())
