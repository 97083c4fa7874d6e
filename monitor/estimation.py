"""Performance without labels: an estimate with an interval, and how far to trust it.

Pure numpy/scikit-learn, no I/O. Fitted once per model version on the reference's labelled rows
(``monitor.reference`` keeps it beside the drift profile), then applied to any batch.

- **Regression, DLE-style** (NannyML's "direct loss estimation"): a second model learns each row's
  loss from the inputs and the prediction, one for the squared error and one for the absolute
  error. The batch's estimated MSE (MAE) is the mean of the predicted per-row losses. The loss
  models are scikit-learn's ``HistGradientBoostingRegressor``: a maintained gradient-boosting
  implementation already in our dependencies, handling missing values and categories natively.
- **Classifiers, CBPE-style**: with calibrated probabilities p_i(k), the expected number of right
  answers is the sum of p_i(predicted class), so expected accuracy is their mean; expected macro F1
  comes from expected TP/FP/FN counts per class. Probabilities are calibrated on the reference
  (isotonic per class, scikit-learn's ``IsotonicRegression``) when it has enough labelled rows.

**The interval** (nominal ``CONFIDENCE`` = 90 %). The realized MSE of a batch differs from the
estimate for two reasons, both estimated on the reference:

1. sampling: given the inputs, each row's loss scatters around its expected value. A third model
   learns that scatter (the squared out-of-fold residual of the loss model, so it is not fooled by
   the loss model's own fit), and the batch's variance is the sum of the per-row variances / n².
2. the loss model's own error (bias), which does not shrink with the batch size: held-out
   calibration. Every reference row gets an out-of-fold loss prediction (``FOLDS`` refits, each
   without one fold); the rows are sorted by it and cut into ``GROUPS`` pseudo-batches, each
   concentrated in one region of the inputs as a drifted batch is; in each, the squared error of the
   mean prediction beyond its sampling variance is the model's squared bias there, and the mean over
   groups, relative to the group's level, is the loss model's relative standard error.

The interval is the estimate ± z * sqrt(sampling² + model²). Its coverage is measured, not assumed:
``bench/label_free_estimation.py``, and per model in production (``judge`` + the track record).
For classifiers the sampling part is the Poisson-binomial variance of the number of right answers
(accuracy) and the spread of macro F1 over label draws from the calibrated probabilities.

**What no label-free estimate can see**: a change of P(y | x) with unchanged inputs (pure concept
drift). The estimate only reads inputs and predictions, so it stays where it was; the labels, when
they come, reveal it (docs/labels-later.md).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CONFIDENCE = 0.90
Z = 1.6448536269514722  # scipy.stats.norm.ppf(0.95): two-sided 90 %
MIN_ROWS = 40  # fewer labelled reference rows: no estimator (the estimate would be noise)
MIN_CALIBRATION_ROWS = 300  # fewer: the classifier's own probabilities are used as they are
FOLDS = 5  # out-of-fold loss predictions: each reference row predicted by a model fitted without it
GROUPS = 10  # held-out pseudo-batches the loss model's bias is measured on
MAX_FIT_ROWS = 20_000  # the loss models learn from at most this many reference rows (seeded sample)
MC_CELLS = 2_000_000  # label draws x rows for the macro-F1 interval
VARIANCE_FLOOR = 1e-12


def _hgb(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # Shallow, well-regularised trees: per-row losses are noisy targets (a squared Gaussian error
    # has a standard deviation 1.4 times its mean) and references are often a few hundred rows.
    return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                         min_samples_leaf=40, l2_regularization=1.0,
                                         categorical_features="from_dtype", random_state=seed)


@dataclass
class LossModel:
    """Per-row expected loss (``mean``), the per-row scatter around it, and the loss model's relative
    bias on held-out regions of the reference (``relative_bias``)."""

    mean: Any
    scatter: Any
    relative_bias: float

    def batch(self, design: pd.DataFrame) -> tuple[float, float, float]:
        """(estimate, sampling standard error, model standard error) of the batch mean loss."""
        n = len(design)
        estimate = float(np.mean(np.clip(self.mean.predict(design), 0.0, None)))
        variance = np.clip(self.scatter.predict(design), VARIANCE_FLOOR, None)
        sampling = float(math.sqrt(np.sum(variance)) / n)
        return estimate, sampling, self.relative_bias * estimate


def _fit_loss_model(design: pd.DataFrame, loss: np.ndarray, seed: int) -> LossModel:
    n = len(design)
    fold = np.random.default_rng(seed).permutation(n) % FOLDS
    out_of_fold = np.empty(n)
    for k in range(FOLDS):
        held = fold == k
        out_of_fold[held] = _hgb(seed + k).fit(design[~held], loss[~held]).predict(design[held])
    out_of_fold = np.clip(out_of_fold, 0.0, None)
    scatter = _hgb(seed + FOLDS).fit(design, (loss - out_of_fold) ** 2)
    variance = np.clip(scatter.predict(design), VARIANCE_FLOOR, None)
    # Held-out calibration: rows sorted by the model's prediction, then by each numeric input (never
    # by the predicted loss: sorting on a noisy estimate selects its errors), and cut into GROUPS
    # pseudo-batches, each concentrated in one region of the inputs as a drifted batch is. In each,
    # the error of the out-of-fold estimate beyond its sampling variance is the loss model's own
    # (squared) bias there; its mean, relative to the groups' level, is its relative standard error.
    excess = []
    orders = [design["__prediction__"]] + [design[c] for c in design.columns[:-1]
                                          if pd.api.types.is_float_dtype(design[c])][:4]
    for column in orders:
        order = np.argsort(np.nan_to_num(column.to_numpy(dtype=float), nan=np.inf), kind="stable")
        for group in np.array_split(order, min(GROUPS, max(1, n // 50))):
            level = float(np.mean(out_of_fold[group]))
            if level <= 0:
                continue
            error = float(np.mean(out_of_fold[group] - loss[group]))
            excess.append((error**2 - float(np.sum(variance[group])) / group.size**2) / level**2)
    relative_bias = math.sqrt(max(0.0, float(np.mean(excess)))) if excess else 0.0
    return LossModel(mean=_hgb(seed + FOLDS + 1).fit(design, loss), scatter=scatter,
                     relative_bias=relative_bias)


@dataclass
class RegressionEstimator:
    """DLE: loss models for the squared and absolute error of a regressor."""

    numeric: list[str]
    categorical: dict[str, list[str]]
    losses: dict[str, LossModel]
    n_reference: int
    baseline: dict[str, float] = field(default_factory=dict)
    method: str = "dle"

    def design(self, frame: pd.DataFrame, predictions: np.ndarray) -> pd.DataFrame:
        return _design(frame, predictions, self.numeric, self.categorical)

    def estimate(self, frame: pd.DataFrame, predictions: Any) -> dict[str, Any]:
        preds = np.asarray(predictions, dtype=float).reshape(-1)
        design = self.design(frame, preds)
        metrics = {}
        for name, model in self.losses.items():
            value, sampling, spread = model.batch(design)
            metrics[name] = _interval(value, math.hypot(sampling, spread), low=0.0)
            metrics[name].update(sampling_se=sampling, model_se=spread)
        return {"method": self.method, "task": "regression", "primary": "mse", "confidence": CONFIDENCE,
                "rows": int(len(design)), "reference_rows": self.n_reference, "metrics": metrics,
                "baseline": dict(self.baseline)}


def _design(frame: pd.DataFrame, predictions: np.ndarray, numeric: list[str],
            categorical: dict[str, list[str]]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for name in numeric:
        columns[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    for name, known in categorical.items():
        values = frame[name].astype("string").to_numpy(dtype=object)
        columns[name] = pd.Categorical(values, categories=known)  # unseen categories become missing
    columns["__prediction__"] = predictions
    return pd.DataFrame(columns)


def fit_regression_estimator(frame: pd.DataFrame, features: list[str], predictions: Any, labels: Any,
                             seed: int = 0) -> RegressionEstimator | None:
    """The DLE estimator from reference rows (inputs, the model's predictions, the true values)."""
    preds = np.asarray(predictions, dtype=float).reshape(-1)
    labs = np.asarray(labels, dtype=float).reshape(-1)
    keep = np.isfinite(preds) & np.isfinite(labs)
    if int(keep.sum()) < MIN_ROWS:
        return None
    frame = frame.loc[keep].reset_index(drop=True)
    preds, labs = preds[keep], labs[keep]
    if len(frame) > MAX_FIT_ROWS:
        pick = np.sort(np.random.default_rng(seed).choice(len(frame), MAX_FIT_ROWS, replace=False))
        frame, preds, labs = frame.iloc[pick].reset_index(drop=True), preds[pick], labs[pick]
    numeric = [f for f in features if pd.api.types.is_numeric_dtype(frame[f])
               and not pd.api.types.is_bool_dtype(frame[f])]
    categorical = {f: sorted({str(v) for v in frame[f].dropna().unique()})[:250]
                   for f in features if f not in numeric}
    design = _design(frame, preds, numeric, categorical)
    error = labs - preds
    losses = {"mse": _fit_loss_model(design, error**2, seed),
              "mae": _fit_loss_model(design, np.abs(error), seed + 10)}
    return RegressionEstimator(numeric=numeric, categorical=categorical, losses=losses,
                               n_reference=int(len(frame)),
                               baseline={"mse": float(np.mean(error**2)),
                                         "mae": float(np.mean(np.abs(error)))})


# --- classifiers ----------------------------------------------------------------------------------
@dataclass
class ClassifierEstimator:
    """CBPE: expected accuracy and macro F1 from (calibrated) probabilities."""

    classes: list[str]
    calibrators: list[Any] | None
    n_reference: int
    baseline: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    method: str = "cbpe"

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=float)
        if self.calibrators is None:
            return proba
        if len(self.classes) == 2:
            p1 = self.calibrators[0].predict(proba[:, 1])
            return np.column_stack([1.0 - p1, p1])
        out = np.column_stack([c.predict(proba[:, k]) for k, c in enumerate(self.calibrators)])
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / len(self.classes))

    def estimate(self, predicted: Any, proba: Any) -> dict[str, Any]:
        from monitor.drift.classification import as_labels

        p = self.calibrate(proba)
        index = {c: i for i, c in enumerate(self.classes)}
        pred = np.array([index.get(v, -1) for v in as_labels(predicted)], dtype=np.intp)
        n = int(pred.size)
        right = np.where(pred >= 0, p[np.arange(n), np.clip(pred, 0, None)], 0.0)
        accuracy = float(right.mean())
        acc_se = float(math.sqrt(np.sum(right * (1 - right))) / n)
        f1, f1_se = _expected_macro_f1(p, pred, len(self.classes), self.seed)
        return {"method": self.method, "task": "classification", "primary": "accuracy",
                "confidence": CONFIDENCE, "rows": n, "reference_rows": self.n_reference,
                "calibrated": self.calibrators is not None,
                "metrics": {"accuracy": _interval(accuracy, acc_se, 0.0, 1.0),
                            "macro_f1": _interval(f1, f1_se, 0.0, 1.0)},
                "baseline": dict(self.baseline)}


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    per_class = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    return per_class.mean(axis=-1)


def _expected_macro_f1(p: np.ndarray, pred: np.ndarray, k: int, seed: int) -> tuple[float, float]:
    onehot = np.zeros((pred.size, k))
    valid = pred >= 0
    onehot[np.arange(pred.size)[valid], pred[valid]] = 1.0
    tp = (p * onehot).sum(axis=0)
    fp = ((1 - p) * onehot).sum(axis=0)
    fn = (p * (1 - onehot)).sum(axis=0)
    expected = float(_f1(tp, fp, fn))
    draws = int(max(20, min(200, MC_CELLS // max(pred.size * k, 1))))
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(p, axis=1)
    cumulative[:, -1] = 1.0
    scores = np.empty(draws)
    for d in range(draws):  # one draw of every row's label from its calibrated distribution
        drawn = (rng.random(pred.size)[:, None] > cumulative).sum(axis=1)
        truth = np.zeros_like(onehot)
        truth[np.arange(pred.size), drawn] = 1.0
        scores[d] = _f1((truth * onehot).sum(0), ((1 - truth) * onehot).sum(0), (truth * (1 - onehot)).sum(0))
    return expected, float(scores.std(ddof=1))


def fit_classifier_estimator(labels: Any, predicted: Any, proba: Any, classes: list[Any],
                             seed: int = 0) -> ClassifierEstimator | None:
    """CBPE from the reference: isotonic calibration per class when there are enough labelled rows."""
    if proba is None:
        return None
    from sklearn.isotonic import IsotonicRegression

    from monitor.drift.classification import as_labels

    names = [str(c) for c in classes]
    labs = as_labels(labels)
    proba = np.asarray(proba, dtype=float)
    keep = pd.notna(labs)
    if int(keep.sum()) < MIN_ROWS or proba.ndim != 2 or proba.shape[1] != len(names):
        return None
    labs, proba = labs[keep].astype(str), proba[keep]
    preds = as_labels(predicted)[keep].astype(str)
    calibrators = None
    if labs.size >= MIN_CALIBRATION_ROWS:
        targets = range(1, 2) if len(names) == 2 else range(len(names))
        calibrators = [IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                       .fit(proba[:, k], (labs == names[k]).astype(float)) for k in targets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sklearn.metrics import f1_score

        baseline = {"accuracy": float(np.mean(labs == preds)),
                    "macro_f1": float(f1_score(labs, preds, labels=names, average="macro", zero_division=0))}
    return ClassifierEstimator(classes=names, calibrators=calibrators, n_reference=int(labs.size),
                               baseline=baseline, seed=seed)


# --- judging an estimate against the labels -------------------------------------------------------
def _interval(value: float, se: float, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    lower, upper = value - Z * se, value + Z * se
    if low is not None:
        lower = max(low, lower)
    if high is not None:
        upper = min(high, upper)
    return {"estimate": value, "lower": lower, "upper": upper, "se": se}


def judge(estimate: dict[str, Any], realized: dict[str, Any]) -> dict[str, Any]:
    """The estimate's error once labels are known: per metric absolute and relative error, covered."""
    out: dict[str, Any] = {}
    for name, block in (estimate.get("metrics") or {}).items():
        truth = realized.get(name)
        if not isinstance(truth, int | float) or not math.isfinite(truth):
            continue
        error = float(block["estimate"]) - float(truth)
        out[name] = {"realized": float(truth), "error": error,
                     "relative_error": abs(error) / abs(truth) if truth else None,
                     "covered": bool(block["lower"] <= truth <= block["upper"])}
    return out


@dataclass
class TrackRecord:
    """How good a model's estimates were on the batches that got their labels."""

    batches: int
    mean_abs_relative_error: float | None
    coverage: float | None
    nominal: float
    unreliable: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"labelled_batches": self.batches, "mean_abs_relative_error": self.mean_abs_relative_error,
                "interval_coverage": self.coverage, "nominal_coverage": self.nominal,
                "unreliable": self.unreliable, "reason": self.reason}


MIN_JUDGED = 5  # fewer labelled batches: no verdict on the estimator yet
UNRELIABLE_P = 0.01  # coverage this unlikely under the nominal rate flags the estimate


def track_record(judgements: list[dict[str, Any]], nominal: float = CONFIDENCE) -> TrackRecord:
    """From the primary metric's judgements (``judge`` output of each labelled batch).

    Unreliable when the number of covered batches is improbably low for the nominal rate: a
    one-sided binomial test at 1 % (with 20 batches and 90 % nominal, 14 covered or fewer), so a
    correct interval is flagged in about 1 % of windows, and a badly calibrated one soon after."""
    from scipy.stats import binom

    batches = len(judgements)
    if not batches:
        return TrackRecord(0, None, None, nominal, False, "no labelled batch yet")
    relative = [j["relative_error"] for j in judgements if j.get("relative_error") is not None]
    covered = sum(1 for j in judgements if j.get("covered"))
    coverage = covered / batches
    mare = float(np.mean(relative)) if relative else None
    if batches < MIN_JUDGED:
        return TrackRecord(batches, mare, coverage, nominal, False,
                           f"{batches} labelled batch(es); judged from {MIN_JUDGED}")
    p = float(binom.cdf(covered, batches, nominal))
    unreliable = p < UNRELIABLE_P
    reason = (f"interval covered the realized value in {covered} of {batches} labelled batches "
              f"({coverage:.0%}, nominal {nominal:.0%}; binomial p={p:.2g})")
    return TrackRecord(batches, mare, coverage, nominal, unreliable,
                       ("estimate unreliable: " if unreliable else "") + reason)
