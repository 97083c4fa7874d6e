"""Classifiers: metrics, and label, prediction and concept drift of one batch against the reference.

Pure numpy/scipy/scikit-learn. Labels and predicted classes are compared as strings (so 1, 1.0 and
"1" are one class). The tests, all p-value tests that join the batch's family (Holm by kind):

- label drift (kind "data", target = the label column): chi2 on the label counts;
- prediction drift: chi2 on the predicted-class counts, and KS on the scores (binary: probability
  of the second class; more classes: the top probability) when the model has probabilities;
- concept drift: the per-row loss against the reference's. With probabilities: Welch's t-test on
  the per-row *excess* log loss, -log p(true class) minus the loss the model itself expects on that
  row (the entropy of its predicted distribution). When only the inputs move (P(y | x) unchanged)
  the excess loss keeps its mean whatever rows arrive, so covariate shift does not read as concept
  drift (a KS test on the raw per-row loss flags nearly every input shift: rows further from the
  decision boundary have lower loss); when the relation changes the model is surprised and the mean
  rises. Without probabilities: chi2 on right/wrong counts (the 0/1 loss), which input shifts can
  move too. Figures: bench/classification_quality.py.

Metrics: accuracy, balanced accuracy, macro F1, per-class recall, and log loss and Brier score when
probabilities exist (scikit-learn's definitions, the reference figures beside them).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.drift.profile import CategoricalProfile, NumericProfile, profile_numeric
from monitor.drift.stattests import CategoryTable

EPS = 1e-15  # probability floor of the per-row log loss (scikit-learn's log_loss clips the same way)


@dataclass
class ClassificationBaseline:
    """What scoring a classifier needs from the reference: classes, counts, scores, losses, metrics."""

    classes: list[str]
    labels: CategoricalProfile
    predicted: CategoricalProfile
    loss: NumericProfile | CategoricalProfile  # per-row log loss, or right/wrong counts
    scores: NumericProfile | None = None
    performance: dict[str, Any] = field(default_factory=dict)

    @property
    def has_proba(self) -> bool:
        return self.scores is not None

    def parts(self) -> list[tuple[str, NumericProfile | CategoricalProfile]]:
        out: list[tuple[str, NumericProfile | CategoricalProfile]] = [
            ("cls_labels", self.labels), ("cls_predicted", self.predicted), ("cls_loss", self.loss)]
        if self.scores is not None:
            out.append(("cls_scores", self.scores))
        return out

    def header(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "performance": self.performance}

    @classmethod
    def from_parts(cls, header: dict[str, Any], parts: dict[str, Any]) -> ClassificationBaseline:
        return cls(classes=[str(c) for c in header["classes"]], labels=parts["cls_labels"],
                   predicted=parts["cls_predicted"], loss=parts["cls_loss"],
                   scores=parts.get("cls_scores"), performance=dict(header.get("performance") or {}))


def as_labels(values: Any) -> np.ndarray:
    """Class labels as strings; integral floats lose their ".0" so CSV/JSON round trips match."""
    series = pd.Series(np.asarray(values).reshape(-1))
    if pd.api.types.is_float_dtype(series.dtype):
        finite = series.dropna()
        if (finite == finite.round()).all():
            return np.array([None if pd.isna(v) else str(int(v)) for v in series], dtype=object)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(str).to_numpy(dtype=object)
    return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for v in series], dtype=object)


def _counts(name: str, values: np.ndarray, categories: Sequence[str]) -> CategoricalProfile:
    present = values[pd.notna(values)]
    cats = list(dict.fromkeys([*categories, *sorted(set(present) - set(categories))]))
    counts = np.array([int(np.sum(present == c)) for c in cats], dtype=np.int64)
    return CategoricalProfile(name=name, categories=cats, counts=counts, n_rows=int(values.size),
                              n_missing=int(values.size - present.size))


def _proba(proba: Any, n: int, k: int) -> np.ndarray | None:
    if proba is None:
        return None
    arr = np.asarray(proba, dtype=float)
    if arr.ndim != 2 or arr.shape != (n, k):
        raise ValueError(f"predict_proba gave shape {arr.shape}; expected ({n}, {k}) (rows, classes)")
    return arr


def scores_of(proba: np.ndarray) -> np.ndarray:
    """One score per row: the second class's probability (binary), else the top probability."""
    return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)


def row_log_loss(labels: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """-log p(true class) per row, p floored at EPS; a label outside the classes gets p = EPS."""
    index = {c: i for i, c in enumerate(classes)}
    rows = np.array([index.get(lab, -1) for lab in labels])
    p = np.where(rows >= 0, proba[np.arange(len(rows)), np.maximum(rows, 0)], 0.0)
    return -np.log(np.clip(p, EPS, 1.0))


def row_excess_loss(labels: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Per-row log loss minus its expectation under the model's own probabilities (their entropy)."""
    entropy = -np.sum(proba * np.log(np.clip(proba, EPS, 1.0)), axis=1)
    return row_log_loss(labels, proba, classes) - entropy


def metrics(labels: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None,
            classes: Sequence[str]) -> dict[str, Any]:
    """scikit-learn's accuracy, balanced accuracy, macro F1 and per-class recall (over the model's
    classes), log loss and Brier score (binary: of the second class; more: the multi-class sum)."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        brier_score_loss,
        f1_score,
        log_loss,
        recall_score,
    )

    classes = list(classes)
    out: dict[str, Any] = {"rows_with_label": int(labels.size)}
    if labels.size == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a small batch: sklearn warns, we report 0
        out["accuracy"] = float(accuracy_score(labels, predicted))
        out["balanced_accuracy"] = float(balanced_accuracy_score(labels, predicted))
        out["macro_f1"] = float(f1_score(labels, predicted, labels=classes, average="macro",
                                         zero_division=0))
        recall = recall_score(labels, predicted, labels=classes, average=None, zero_division=0)
        out["per_class_recall"] = {c: float(r) for c, r in zip(classes, recall, strict=True)}
        if proba is not None and set(labels) <= set(classes):
            out["log_loss"] = float(log_loss(labels, proba, labels=classes))
            if len(classes) == 2:
                out["brier"] = float(brier_score_loss(labels == classes[1], proba[:, 1]))
            else:
                onehot = (labels[:, None] == np.array(classes)[None, :]).astype(float)
                out["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    return out


def fit_classification(labels: Any, predicted: Any, proba: Any, classes: Sequence[Any] | None,
                       bins: int) -> ClassificationBaseline:
    """The reference baseline of a classifier from its labels, predictions and probabilities."""
    labs, preds = as_labels(labels), as_labels(predicted)
    keep = pd.notna(labs)
    labs, preds = labs[keep], preds[keep]
    names = [str(c) for c in classes] if classes is not None else sorted(set(labs) | set(preds))
    p = _proba(proba, int(keep.size), len(names))
    p = None if p is None else p[keep]
    if labs.size == 0:
        raise ValueError("the reference has no labelled rows; a classifier's baseline needs labels")
    if p is not None:
        loss: NumericProfile | CategoricalProfile = profile_numeric(
            "excess_loss", row_excess_loss(labs, p, names), bins)
        scores = profile_numeric("scores", scores_of(p), bins)
    else:
        loss = _counts("loss", np.where(labs == preds, "right", "wrong").astype(object), ["right", "wrong"])
        scores = None
    return ClassificationBaseline(classes=names, labels=_counts("labels", labs, names),
                                  predicted=_counts("predicted", preds, names), loss=loss, scores=scores,
                                  performance=metrics(labs, preds, p, names))


def table(reference: CategoricalProfile, current: np.ndarray) -> CategoryTable:
    """Reference and current counts over the reference categories plus any new ones."""
    present = current[pd.notna(current)]
    new = sorted(set(present) - set(reference.categories))
    cats = [*reference.categories, *new]
    return CategoryTable(
        categories=cats,
        reference=np.concatenate([reference.counts, np.zeros(len(new), dtype=np.int64)]),
        current=np.array([int(np.sum(present == c)) for c in cats], dtype=np.int64),
    )
