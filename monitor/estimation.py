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
estimate for two reasons:

1. sampling: given the inputs, each row's loss scatters around its expected value. A model learns
   that scatter (the squared out-of-fold residual of the loss models, so it is not fooled by their
   own fit), and the batch's variance is the sum of the per-row variances / n².
2. the loss model's own error, which does not shrink with the batch size and depends on where the
   batch lies: the loss is learnt from a finite, skewed sample of the reference, worst where the
   reference is thin (the tail a drifted batch moves into). **Cross-fitting**: ``FOLDS`` loss models,
   each fitted without one fold, estimate the batch; their mean is the estimate and their spread the
   delete-a-group jackknife variance *of this batch* (it grows as the batch leaves the reference's
   dense region, where the folds disagree). The jackknife under-states the error where a thin
   region's sample came out low (a low sample of a skewed loss also scatters little), so it is
   **calibrated on held-out pseudo-batches drawn with covariate shift**: the reference is split in
   halves, the cross-fitted models of one half estimate tilted resamples of the other (and back), and
   the jackknife term gets the smallest factor (>= 1) with which the intervals cover ``CONFIDENCE``
   of them, overall and among the more shifted half (conformal-style).

The interval is estimate ± t * sqrt(sampling² + model²), t Student's quantile with Welch-Satterthwaite
degrees of freedom (the jackknife has ``FOLDS`` - 1). NannyML's DLE bands (±3 standard errors of the
reference's chunk-level loss) carry the sampling part only. Coverage is measured, not assumed:
``bench/label_free_estimation.py`` across reference samples and sizes, and per model in production
(``judge`` + the track record).
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

from monitor.tree_predict import as_array_for

CONFIDENCE = 0.90
Z = 1.6448536269514722  # scipy.stats.norm.ppf(0.95): two-sided 90 %
MIN_ROWS = 40  # fewer labelled reference rows: no estimator (the estimate would be noise)
MIN_CALIBRATION_ROWS = 300  # fewer: the classifier's own probabilities are used as they are
FOLDS = 8  # cross-fitted loss models: each reference row predicted by a model fitted without it
PSEUDO_BATCHES = 200  # held-out pseudo-batches with covariate shift the interval is calibrated on
PSEUDO_ROWS = 2_000  # rows drawn per pseudo-batch
MAX_TILT = 1.5  # pseudo-batches shift one input by up to this many standard deviations
MAX_INFLATION = 10.0
MAX_FIT_ROWS = 20_000  # the loss models learn from at most this many reference rows (seeded sample)
# A batch's estimate is computed on at most this many of its rows (a seeded simple random sample;
# the interval adds the sample's own error). 18 boosted predictions per row made the estimate 70 %
# of a warm 10,000-row evaluation and 32 s of a 1M-row push. 2,000 is the batch size the estimate's
# accuracy and coverage are checked at (tests/monitor/test_estimation.py): those batches are
# estimated whole, as before; 500 rows would cost an eighth as much, but then 2.5 % of 2,000-row
# batches missed the realized MSE by more than 20 %.
ESTIMATE_ROWS = 2_000
MC_CELLS = 2_000_000  # label draws x rows for the macro-F1 interval
VARIANCE_FLOOR = 1e-12


def _hgb(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # Shallow trees, slow learning: per-row losses are noisy targets (a squared Gaussian error has a
    # standard deviation 1.4 times its mean). Leaves of 20 rows and no L2 shrinkage: larger leaves
    # and shrinkage pulled the thin, high-loss edge of the reference towards the middle (a drifted
    # batch's MSE came out 20-35 % low on some reference samples); the extra variance is what the
    # cross-fitted jackknife measures, so the interval widens instead of missing.
    return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                         min_samples_leaf=20, l2_regularization=0.0,
                                         categorical_features="from_dtype", random_state=seed)


@dataclass
class LossModel:
    """Per-row expected loss from ``FOLDS`` cross-fitted models (each fitted without one fold of the
    reference), the per-row scatter around it, and the calibration of the interval.

    - ``folds``: the estimate is the mean of their batch estimates; their spread is the
      delete-a-group jackknife's estimate of the fit error *for this batch*: large where the batch
      sits in regions the reference covers thinly (the folds disagree there), small elsewhere.
    - ``scatter``: each row's variance around its expected loss (sampling error of the labels).
    - ``inflation``: the factor on the jackknife term that makes the interval cover ``CONFIDENCE`` of
      held-out pseudo-batches drawn from the reference with covariate shift (``_calibrate``)."""

    folds: list[Any]
    scatter: Any
    inflation: float

    def batch(self, design: pd.DataFrame, total: int | None = None) -> tuple[float, float, float, float]:
        """(estimate, sampling standard error, model standard error, the interval's multiplier).

        ``design`` may be a simple random sample of a batch of ``total`` rows: the sampling variance
        then has two parts, the realized loss around its expectation (estimated from the sample,
        scaled to the batch) and the sample mean of the expected loss around the batch's mean (the
        finite-population variance of a mean of ``m`` of ``total`` rows); with the whole batch the
        second is zero and the first is the exact sum."""
        m = len(design)
        n = max(int(total or m), m)
        design = as_array_for([*self.folds, self.scatter], design)  # checked and converted once
        per_row = np.array([np.clip(model.predict(design), 0.0, None) for model in self.folds])
        theta = per_row.mean(axis=1)
        estimate = float(theta.mean())
        variance = np.clip(self.scatter.predict(design), VARIANCE_FLOOR, None)
        sampling_var = float(np.sum(variance)) / (n * m)
        if m < n and m > 1:
            sampling_var += (1.0 - m / n) * float(np.var(per_row.mean(axis=0), ddof=1)) / m
        sampling = math.sqrt(sampling_var)
        model = self.inflation * math.sqrt(_jackknife(theta))
        return estimate, sampling, model, _multiplier(sampling**2, model**2, len(self.folds) - 1)


def _fold_means(folds: list[Any], design: pd.DataFrame, weight: np.ndarray) -> np.ndarray:
    """Each fold model's weighted mean predicted loss over the rows."""
    return np.array([float(np.clip(m.predict(design), 0.0, None) @ weight) for m in folds])


def _multiplier(sampling: Any, model: Any, df: int) -> Any:
    """The two-sided ``CONFIDENCE`` quantile of Student's t with Welch-Satterthwaite degrees of freedom:
    the sampling variance is known from thousands of rows, the jackknife's from ``FOLDS`` - 1 degrees
    of freedom only (a chi-square with 7 df scatters by half its size), which the normal quantile would
    ignore (a 90 % normal interval then covers about 86 %)."""
    from scipy.stats import t

    total = np.asarray(sampling) + np.asarray(model)
    dof = np.where(np.asarray(model) > 0, total**2 * df / np.maximum(np.asarray(model) ** 2, 1e-300), 1e9)
    return t.ppf(0.5 + CONFIDENCE / 2, np.clip(dof, df, 1e9))


def _jackknife(theta: np.ndarray) -> float:
    """Delete-a-group jackknife variance of a statistic from its K leave-one-fold-out values."""
    k = theta.size
    return (k - 1) / k * float(np.sum((theta - theta.mean()) ** 2))


def _fit_folds(design: pd.DataFrame, loss: np.ndarray, fold: np.ndarray,
               seed: int) -> tuple[list[Any], np.ndarray]:
    """One model per fold, each fitted without it; and every row's out-of-fold prediction."""
    out_of_fold = np.empty(len(design))
    folds = []
    for k in range(FOLDS):
        held = fold == k
        model = _hgb(seed + k).fit(design[~held], loss[~held])
        out_of_fold[held] = model.predict(design[held])
        folds.append(model)
    return folds, np.clip(out_of_fold, 0.0, None)


def _fit_loss_model(design: pd.DataFrame, loss: np.ndarray, seed: int) -> LossModel:
    n = len(design)
    fold = np.random.default_rng(seed).permutation(n) % FOLDS
    folds, out_of_fold = _fit_folds(design, loss, fold, seed)
    scatter = _hgb(seed + FOLDS).fit(design, (loss - out_of_fold) ** 2)
    variance = np.clip(scatter.predict(design), VARIANCE_FLOOR, None)
    inflation = _calibrate(design, loss, variance, seed)
    return LossModel(folds=folds, scatter=scatter, inflation=inflation)


def _calibrate(design: pd.DataFrame, loss: np.ndarray, variance: np.ndarray, seed: int) -> float:
    """Held-out (conformal-style) calibration of the model-error term on pseudo-batches drawn with
    covariate shift from rows the loss models never saw.

    The reference is split in two halves; the cross-fitted models of one half estimate pseudo-batches
    drawn from the other, and the other way round. Each pseudo-batch is a resample of the held-out
    half tilted along one numeric input (or the prediction) by weights exp(t * z), t uniform in
    +-``MAX_TILT``, z the standardised column: for a Gaussian input that is exactly a mean shift of t
    standard deviations, so the pseudo-batch sits in one region as a drifted batch does. Its realized
    loss is the mean of the true losses drawn; its sampling variance counts repeated rows (sum of
    count^2 * row variance); its jackknife term is the half's folds' spread over it, as in production.

    Why a held-out half and not the out-of-fold predictions: where the reference is thin its own
    losses are a noisy sample (a squared error is heavily skewed), and a region whose sample came out
    low gives low fold estimates *and* a low jackknife spread, which only rows the models never saw
    expose. ``inflation`` is the smallest factor >= 1 on the jackknife term with which ``CONFIDENCE``
    of the pseudo-batches are covered (the calibration widens the interval, never narrows it); the
    jackknife of a half is larger than the full reference's, so the ratio carries over."""
    n = len(design)
    values = _numeric_matrix(design)
    if values.shape[1] == 0 or n < 8 * FOLDS:
        return 1.0
    spread = np.nanstd(values, axis=0)
    standard = np.nan_to_num((values - np.nanmean(values, axis=0)) / np.where(spread > 0, spread, 1.0))
    rng = np.random.default_rng(seed + 99)
    half = rng.permutation(n) % 2 == 0
    errors, sampling, jackknife = [], [], []
    for side in (half, ~half):
        fit_rows, held_rows = np.flatnonzero(side), np.flatnonzero(~side)
        fold = rng.permutation(fit_rows.size) % FOLDS
        folds, _ = _fit_folds(design.iloc[fit_rows].reset_index(drop=True), loss[fit_rows], fold, seed + 50)
        held = design.iloc[held_rows].reset_index(drop=True)
        per_fold = np.column_stack([np.clip(m.predict(held), 0.0, None) for m in folds])
        size = int(min(held_rows.size, PSEUDO_ROWS))
        for draw in range(PSEUDO_BATCHES // 2):
            logits = rng.uniform(-MAX_TILT, MAX_TILT) * standard[held_rows, draw % standard.shape[1]]
            weight = np.exp(logits - logits.max())
            counts = np.bincount(rng.choice(held_rows.size, size=size, replace=True, p=weight / weight.sum()),
                                 minlength=held_rows.size)
            share = counts / size
            theta = share @ per_fold
            errors.append(float(theta.mean() - share @ loss[held_rows]))
            sampling.append(float((share**2) @ variance[held_rows]))
            jackknife.append(_jackknife(theta))
    errors, sampling, jackknife = np.abs(errors), np.array(sampling), np.array(jackknife)
    # The smallest factor on the jackknife term whose intervals (t multiplier included) cover
    # CONFIDENCE of the pseudo-batches, and of the half of them where the model error weighs most
    # (the shifted ones): coverage must hold for drifted batches, not on average over easy ones.
    hard = jackknife / np.maximum(sampling, VARIANCE_FLOOR) >= np.median(jackknife / np.maximum(sampling,
                                                                                               VARIANCE_FLOOR))
    for factor in np.arange(1.0, MAX_INFLATION + 1e-9, 0.05):
        model = factor**2 * jackknife
        covered = errors <= _multiplier(sampling, model, FOLDS - 1) * np.sqrt(sampling + model)
        if min(float(np.mean(covered)), float(np.mean(covered[hard]))) >= CONFIDENCE:
            return float(factor)
    return MAX_INFLATION


def _numeric_matrix(design: pd.DataFrame) -> np.ndarray:
    columns = [c for c in design.columns if pd.api.types.is_float_dtype(design[c])]
    return design[columns].to_numpy(dtype=float)


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

    def estimate(self, frame: pd.DataFrame, predictions: Any,
                 max_rows: int = ESTIMATE_ROWS) -> dict[str, Any]:
        preds = np.asarray(predictions, dtype=float).reshape(-1)
        n = int(preds.size)
        rows = _sample_rows(n, max_rows)
        if rows is not None:
            frame, preds = frame.iloc[rows], preds[rows]
        design = self.design(frame, preds)
        metrics = {}
        for name, model in self.losses.items():
            value, sampling, spread, multiplier = model.batch(design, total=n)
            metrics[name] = _interval(value, math.hypot(sampling, spread), low=0.0, z=float(multiplier))
            metrics[name].update(sampling_se=sampling, model_se=spread, multiplier=float(multiplier))
        return {"method": self.method, "task": "regression", "primary": "mse", "confidence": CONFIDENCE,
                "rows": n, "sampled_rows": int(len(design)), "reference_rows": self.n_reference,
                "metrics": metrics, "baseline": dict(self.baseline)}


def _sample_rows(n: int, max_rows: int) -> np.ndarray | None:
    """Sorted row positions of a seeded simple random sample of ``max_rows`` of ``n`` (None: all).
    Seeded by the batch size so the same batch gets the same estimate every time."""
    if max_rows <= 0 or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(n).choice(n, max_rows, replace=False))


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
                             seed: int = 0,
                             metrics: tuple[str, ...] = ("mse", "mae")) -> RegressionEstimator | None:
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
    targets = {"mse": (error**2, seed), "mae": (np.abs(error), seed + 10)}
    losses = {name: _fit_loss_model(design, *targets[name]) for name in metrics}
    return RegressionEstimator(numeric=numeric, categorical=categorical, losses=losses,
                               n_reference=int(len(frame)),
                               baseline={name: float(np.mean(targets[name][0])) for name in metrics})


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
def _interval(value: float, se: float, low: float | None = None, high: float | None = None,
              z: float = Z) -> dict[str, Any]:
    lower, upper = value - z * se, value + z * se
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
