"""The drift detector: fit a reference profile once per model version, then score batches cheaply.

scikit-learn shape: settings in ``__init__``, learning in ``fit`` (builds ``profile_``), and ``score``
never re-learns. Scoring sorts each batch column once (in a thread pool for large batches: numpy's sort
and searches release the GIL) and runs every configured test on the sorted values against the
profile's pre-sorted reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from monitor.drift import concept, decision, quality
from monitor.drift.columns import SortedColumn, category_counts, column_kind, numeric_array, sort_numeric
from monitor.drift.config import DriftConfig
from monitor.drift.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    profile_column,
    profile_joint,
    profile_numeric,
)
from monitor.drift.report import DriftReport, TestResult
from monitor.drift.stattests import CategoryTable, StatTest, check_names, get_test, run_test
from monitor.drift.stattests.energy import joint_test

T = TypeVar("T")
R = TypeVar("R")
Distribution = dict[str, list[Any]]
ColumnScore = tuple[dict[str, TestResult], dict[str, Any], Distribution | None]
MAX_REPORT_BINS = 20  # bins per distribution stored in a report (PSI bins beyond this are merged)


class DriftDetector:
    """Data, concept and prediction drift plus data quality of batches against one reference."""

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()

    @classmethod
    def from_profile(cls, profile: ReferenceProfile, config: DriftConfig | None = None) -> DriftDetector:
        """A fitted detector from a stored profile (no reference data needed)."""
        detector = cls(config)
        detector.profile_ = profile
        return detector

    # --- fit -----------------------------------------------------------------------------------------
    def fit(
        self,
        reference: pd.DataFrame,
        predictions: Any = None,
        labels: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> DriftDetector:
        """Build ``profile_`` from the reference frame and, optionally, the model's outputs on it.

        ``predictions``/``labels`` are array-likes with one value per row, or names of columns of
        ``reference`` (those columns are then not profiled as features).
        """
        _check_frame(reference, "reference")
        preds, labs, model_columns = _model_outputs(reference, predictions, labels, "reference")
        columns = [c for c in reference.columns if c not in model_columns]
        if not columns:
            raise ValueError(
                "the reference has no feature columns; pass a frame with the model's input columns"
            )
        bins = self.config.psi_bins
        parallel = reference.shape[0] * len(columns) >= self.config.parallel_min_values
        profiles = _map(
            lambda c: profile_column(str(c), reference[c], bins), columns, parallel, self.config.n_jobs
        )
        prediction_profile = residual_profile = None
        if preds is not None:
            prediction_profile = _baseline("predictions", preds, bins)
        if labs is not None and preds is not None:
            residual_profile = _baseline("residuals", concept.residuals(preds, labs), bins)
        self.profile_ = ReferenceProfile(
            features={p.name: p for p in profiles},
            n_rows=int(reference.shape[0]),
            psi_bins=bins,
            predictions=prediction_profile,
            residuals=residual_profile,
            metadata=dict(metadata or {}),
            joint=None
            if self.config.joint_test == "none"
            else profile_joint(
                reference,
                [c for c, p in zip(columns, profiles, strict=True) if isinstance(p, NumericProfile)],
                self.config.joint_max_rows,
            ),
        )
        return self

    # --- score ---------------------------------------------------------------------------------------
    def score(self, current: pd.DataFrame, predictions: Any = None, labels: Any = None,
              probabilities: Any = None) -> DriftReport:
        """Score one batch against the profile; only the batch is processed.

        For a classifier's profile (``profile_.classification``), ``predictions`` are predicted classes,
        ``labels`` the true classes and ``probabilities`` an optional (rows, classes) array.
        """
        profile = self._fitted_profile()
        config = self.config
        _check_frame(current, "batch")
        classifier = profile.classification is not None
        if classifier:
            preds = labs = None
            model_columns: set[str] = set()
        else:
            preds, labs, model_columns = _model_outputs(current, predictions, labels, "batch")
        by_name = {str(c): c for c in current.columns}  # profiles store names as strings
        missing = [name for name in profile.features if name not in by_name]
        if missing:
            raise ValueError(
                f"the batch lacks column(s) {', '.join(map(repr, missing))} that the reference profile has; "
                "send every profiled column (missing values may be NaN) "
                "or fit a profile on the columns you send"
            )
        unexpected = [n for n, c in by_name.items() if n not in profile.features and c not in model_columns]
        names = list(profile.features)
        parallel = current.shape[0] * len(names) >= config.parallel_min_values
        scored = _map(
            lambda n: _score_column(profile.features[n], current[by_name[n]], config),
            names,
            parallel,
            config.n_jobs,
        )
        features = dict(zip(names, (s[0] for s in scored), strict=True))
        column_quality = dict(zip(names, (s[1] for s in scored), strict=True))
        distributions = {n: s[2] for n, s in zip(names, scored, strict=True) if s[2] is not None}

        if classifier:
            label_name = str(profile.metadata.get("target", "label"))
            label_result, concept_results, prediction_results, performance, model_quality, model_sizes = (
                _score_classifier(profile, predictions, labels, probabilities, config, label_name)
            )
            if label_result is not None:
                features.setdefault(label_name, {})[label_result.test] = label_result
            model_bins: dict[str, Distribution] = {}
        else:
            concept_results, prediction_results, performance, model_quality, model_sizes, model_bins = (
                _score_model(profile, preds, labs, config)
            )
        for name, bins in model_bins.items():
            distributions.setdefault(name, bins)  # a feature named "residuals" keeps its own chart
        feature_results = [r for per in features.values() for r in per.values()]
        all_results = feature_results + list(concept_results.values()) + list(prediction_results.values())
        joint = _score_joint(profile, current, by_name, feature_results, config)
        family_size = decision.correct(all_results, config, joint)
        joint_results = {} if joint is None else {joint.test: joint}

        data_verdict = decision.verdict("data_drift", [*joint_results.values(), *feature_results])
        data_verdict.features = decision.verdict("data_drift", feature_results).features
        concept_verdict = decision.verdict("concept_drift", concept_results.values())
        prediction_verdict = decision.verdict("prediction_drift", prediction_results.values())
        failed = {name: q["issues"] for name, q in column_quality.items() if q["issues"]}
        if model_quality.get("issues"):
            failed["model"] = model_quality["issues"]
        quality_verdict = decision.verdict("data_quality", [])
        quality_verdict.detected = bool(failed)
        quality_verdict.features = [n for n in failed if n != "model"]
        quality_verdict.drivers = [f"{n}:{issue}" for n, issues in failed.items() for issue in issues]
        return DriftReport(
            data_drift=data_verdict.detected,
            concept_drift=concept_verdict.detected,
            prediction_drift=prediction_verdict.detected,
            quality_failed=quality_verdict.detected,
            drifted_features=data_verdict.features,
            features=features,
            concept=concept_results,
            prediction=prediction_results,
            performance=performance,
            quality={
                "passed": not failed,
                "failed_features": quality_verdict.features,
                "columns": column_quality,
                "model": model_quality,
                "unexpected_columns": unexpected,
            },
            verdicts={
                v.kind: v for v in (data_verdict, concept_verdict, prediction_verdict, quality_verdict)
            },
            sample_sizes={"reference": profile.n_rows, "current": int(current.shape[0]), **model_sizes},
            settings={
                "alpha": config.alpha,
                "correction": config.correction,
                "family_size": family_size,
                "distances_decide": config.distances_decide,
                "large_sample": config.large_sample,
                "joint_test": None if joint is None else joint.test,
            },
            distributions=distributions,
            joint=joint_results,
        )

    def _fitted_profile(self) -> ReferenceProfile:
        profile = getattr(self, "profile_", None)
        if profile is None:
            raise ValueError(
                "this DriftDetector is not fitted; call fit(reference) or use from_profile(profile)"
            )
        return profile


# --- helpers -------------------------------------------------------------------------------------------
def _map(fn: Callable[[T], R], items: Iterable[T], parallel: bool, n_jobs: int | None) -> list[R]:
    items = list(items)
    workers = min(len(items), n_jobs or os.cpu_count() or 1)
    if not parallel or workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _check_frame(frame: Any, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"the {what} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[0] == 0:
        raise ValueError(f"the {what} has no rows; pass at least one row")
    if not frame.columns.is_unique:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(f"the {what} has duplicate column names {dupes}; rename them")


def _model_outputs(
    frame: pd.DataFrame, predictions: Any, labels: Any, what: str
) -> tuple[np.ndarray | None, np.ndarray | None, set[str]]:
    """Predictions and labels as float arrays (from arrays or column names) and the column names used."""
    if labels is not None and predictions is None:
        raise ValueError(
            "labels were given without predictions; concept drift needs both (residuals = y - f(x))"
        )
    used: set[str] = set()

    def pick(value: Any, name: str) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, str):
            if value not in frame.columns:
                raise ValueError(f"{name} column {value!r} is not in the {what}")
            used.add(value)
            value = frame[value]
        arr = numeric_array(value, name)
        if arr.size != frame.shape[0]:
            raise ValueError(
                f"{name} have {arr.size} values but the {what} has {frame.shape[0]} rows; pass one per row"
            )
        return arr

    return pick(predictions, "predictions"), pick(labels, "labels"), used


def _baseline(name: str, values: np.ndarray, bins: int) -> NumericProfile:
    try:
        return profile_numeric(name, values, bins)
    except ValueError:
        raise ValueError(
            f"the reference {name} have no finite values; check the model outputs and labels"
        ) from None


def _distribution(ref: NumericProfile, column: SortedColumn) -> Distribution:
    """Reference and current counts over the profile's PSI bins (the current ones shared with PSI).

    The PSI bins are open-ended: current values below the reference minimum count in the first bin,
    above its maximum in the last. ``edges`` are the inner bin edges with the reference minimum and
    maximum as outer edges (finite, so JSON-safe). More than ``MAX_REPORT_BINS`` bins are merged
    into that many runs of adjacent bins.
    """
    edges = np.concatenate(([ref.min], ref.bin_edges, [ref.max]))
    ref_counts, cur_counts = ref.bin_counts, column.bin_counts(ref.bin_edges)
    n_bins = ref_counts.size
    if n_bins > MAX_REPORT_BINS:
        starts = np.round(np.linspace(0, n_bins, MAX_REPORT_BINS + 1)).astype(np.intp)[:-1]
        ref_counts = np.add.reduceat(ref_counts, starts)
        cur_counts = np.add.reduceat(cur_counts, starts)
        edges = np.concatenate((edges[starts], edges[-1:]))
    return {
        "edges": edges.tolist(),
        "reference_counts": ref_counts.tolist(),
        "current_counts": cur_counts.tolist(),
    }


def _score_joint(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    by_name: dict[str, Any],
    feature_results: list[TestResult],
    config: DriftConfig,
) -> TestResult | None:
    """The joint energy test of the numeric inputs, when it applies (see ``DriftConfig.joint_test``).

    It must imply every data-drift null it gates, so it runs only when each deciding data p-value test
    is on one of its columns (a chi-square on a categorical column, for one, keeps the per-feature path).
    """
    joint = profile.joint
    if joint is None or not decision.joint_applies(config):
        return None
    deciding = [r for r in feature_results if r.p_value is not None and r.decides]
    columns = set(joint.columns)
    if not deciding or any(r.target not in columns for r in deciding):
        return None
    n_ref = joint.values.shape[0]
    if current.shape[0] + n_ref > config.joint_max_rows:
        return None  # checked before stacking: a large batch is never copied
    values = np.column_stack([numeric_array(current[by_name[c]], f"column {c!r}") for c in joint.columns])
    values = values[np.isfinite(values).all(axis=1)]
    if values.shape[0] == 0:
        return None
    with_mean = config.joint_test == "energy_mean"
    outcome = joint_test(joint.values, values, config.permutations, config.permutation_seed, with_mean)
    threshold = config.threshold(config.joint_test, None)
    features = f"{len(joint.columns)} numeric features, {config.permutations} permutations"
    if with_mean:
        note = (
            f"energy distance {outcome.energy:.4g} (p {outcome.p_energy:.4g}) and mean shift "
            f"{outcome.mean_shift:.4g} (p {outcome.p_mean:.4g}) of {features}; p-value of the smaller"
        )
    else:
        note = f"energy distance of {features}"
    return TestResult(
        test=config.joint_test,
        kind="data",
        target="inputs",
        statistic=outcome.energy,
        p_value=outcome.p_value,
        threshold=threshold,
        drift=outcome.p_value < threshold,
        note=note,
    )


def _tests_for(profile: FeatureProfile, config: DriftConfig) -> list[StatTest]:
    names = config.column_tests.get(profile.name)
    if names is None:
        names = config.numeric_tests if profile.kind == "numeric" else config.categorical_tests
    else:
        check_names(names, profile.kind)
    return [get_test(n) for n in names]


def _score_column(ref: FeatureProfile, series: pd.Series, config: DriftConfig) -> ColumnScore:
    """Every configured test of one column plus its quality figures."""
    tests = _tests_for(ref, config)
    kind = column_kind(series)
    if kind != ref.kind:
        if series.isna().all():
            note = "every value of this column is missing in the batch"
            return (
                {t.name: decision.untested(t, "data", ref.name, config, note) for t in tests},
                quality.missing_column_quality(int(series.shape[0])),
                None,
            )
        raise ValueError(
            f"column {ref.name!r} is {ref.kind} in the reference (dtype {ref.dtype}) but {kind} in the batch "
            f"(dtype {series.dtype}); cast the batch column to the reference type or refit the profile"
        )
    if isinstance(ref, NumericProfile):
        column = sort_numeric(numeric_array(series, f"column {ref.name!r}"))
        column_quality = quality.numeric_quality(ref, column, config)
        n_current = int(column.finite.size)
        if n_current == 0:
            note = "no finite values in the batch; see quality"
            return (
                {t.name: decision.untested(t, "data", ref.name, config, note) for t in tests},
                column_quality,
                _distribution(ref, column),
            )
        results = {
            t.name: decision.result_of(
                t, run_test(t, ref, column), "data", ref.name, config, ref.n_finite, n_current
            )
            for t in tests
        }
        return results, column_quality, _distribution(ref, column)
    assert isinstance(ref, CategoricalProfile)
    counts, n_missing = category_counts(series)
    column_quality = quality.categorical_quality(ref, counts, n_missing, int(series.shape[0]), config)
    n_current = int(series.shape[0]) - n_missing
    if n_current == 0:
        note = "every value of this column is missing in the batch; see quality"
        return (
            {t.name: decision.untested(t, "data", ref.name, config, note) for t in tests},
            column_quality,
            None,
        )
    new = [c for c in counts if c not in set(ref.categories)]
    table = CategoryTable(
        categories=list(ref.categories) + new,
        reference=np.concatenate([ref.counts, np.zeros(len(new), dtype=np.int64)]),
        current=np.array(
            [counts.get(c, 0) for c in ref.categories] + [counts[c] for c in new], dtype=np.int64
        ),
    )
    results = {
        t.name: decision.result_of(t, run_test(t, table), "data", ref.name, config, ref.n_present, n_current)
        for t in tests
    }
    return results, column_quality, None


def _score_model(
    profile: ReferenceProfile, preds: np.ndarray | None, labs: np.ndarray | None, config: DriftConfig
) -> tuple[
    dict[str, TestResult],
    dict[str, TestResult],
    dict[str, Any],
    dict[str, Any],
    dict[str, int],
    dict[str, Distribution],
]:
    """Concept drift (residual test, MSE ratio), prediction drift, the error metrics of one batch and
    the binned prediction and residual distributions."""
    concept_results: dict[str, TestResult] = {}
    prediction_results: dict[str, TestResult] = {}
    performance: dict[str, Any] = {}
    model_quality: dict[str, Any] = {"issues": []}
    sizes: dict[str, int] = {}
    distributions: dict[str, Distribution] = {}
    if preds is not None:
        if profile.predictions is None:
            raise ValueError(
                "predictions were given but the profile has no baseline predictions; "
                "fit the detector with predictions (and labels for concept drift)"
            )
        sorted_preds = sort_numeric(preds)
        model_quality["predictions_missing_share"] = 1 - sorted_preds.finite.size / max(
            sorted_preds.n_rows, 1
        )
        test = get_test(config.prediction_test)
        n = int(sorted_preds.finite.size)
        sizes.update(reference_predictions=profile.predictions.n_finite, current_predictions=n)
        distributions["predictions"] = _distribution(profile.predictions, sorted_preds)
        if n == 0:
            model_quality["issues"].append("no_finite_predictions")
            prediction_results[test.name] = decision.untested(
                test, "prediction", "predictions", config, "no finite predictions in the batch"
            )
        else:
            outcome = run_test(test, profile.predictions, sorted_preds)
            prediction_results[test.name] = decision.result_of(
                test, outcome, "prediction", "predictions", config, profile.predictions.n_finite, n
            )
    if labs is not None:
        assert preds is not None
        if profile.residuals is None:
            raise ValueError(
                "labels were given but the profile has no baseline residuals; "
                "fit the detector with predictions and labels on the reference"
            )
        sorted_res = sort_numeric(concept.residuals(preds, labs))
        mse, mae = concept.error_metrics(sorted_res)
        baseline_mse, baseline_mae = profile.baseline_mse, profile.baseline_mae
        n = int(sorted_res.finite.size)
        n_base = profile.residuals.n_finite
        sizes.update(reference_residuals=n_base, current_residuals=n)
        distributions["residuals"] = _distribution(profile.residuals, sorted_res)
        mse_ratio = concept.ratio(mse, baseline_mse)
        performance.update(
            mse=mse,
            mae=mae,
            rmse=None if mse is None else float(np.sqrt(mse)),
            baseline_mse=baseline_mse,
            baseline_mae=baseline_mae,
            mse_ratio=mse_ratio,
            mae_ratio=concept.ratio(mae, baseline_mae),
            mse_ratio_threshold=config.mse_ratio_threshold,
            rows_with_label=n,
        )
        test = get_test(config.residual_test)
        if n == 0:
            model_quality["issues"].append("no_valid_residuals")
            concept_results[test.name] = decision.untested(
                test, "concept", "residuals", config, "no row has both a finite prediction and label"
            )
        else:
            outcome = run_test(test, profile.residuals, sorted_res)
            concept_results[test.name] = decision.result_of(
                test, outcome, "concept", "residuals", config, n_base, n
            )
            degraded = mse_ratio is not None and mse_ratio > config.mse_ratio_threshold
            concept_results["mse_ratio"] = TestResult(
                test="mse_ratio",
                kind="concept",
                target="mse",
                statistic=mse_ratio,
                p_value=None,
                threshold=config.mse_ratio_threshold,
                drift=degraded,
                adjusted_drift=degraded,
                decides=decision.distances_decide(config, n_base, n),
            )
    return concept_results, prediction_results, performance, model_quality, sizes, distributions


def _score_classifier(
    profile: ReferenceProfile, predictions: Any, labels: Any, probabilities: Any, config: DriftConfig,
    label_name: str,
) -> tuple[
    TestResult | None, dict[str, TestResult], dict[str, TestResult], dict[str, Any], dict[str, Any],
    dict[str, int],
]:
    """Label drift, prediction drift (classes, scores), concept drift (per-row loss) and metrics."""
    from monitor.drift import classification as cls

    base = profile.classification
    chi2, ks = get_test("chi2"), get_test("ks")
    concept_results: dict[str, TestResult] = {}
    prediction_results: dict[str, TestResult] = {}
    model_quality: dict[str, Any] = {"issues": []}
    sizes: dict[str, int] = {}
    label_result = None
    if predictions is None:
        return label_result, concept_results, prediction_results, {}, model_quality, sizes
    preds = cls.as_labels(predictions)
    n = int(preds.size)
    proba = None
    if probabilities is not None and base.has_proba:
        proba = cls._proba(probabilities, n, len(base.classes))
    prediction_results["predicted_classes:chi2"] = decision.result_of(
        chi2, run_test(chi2, cls.table(base.predicted, preds)), "prediction", "predicted_classes", config,
        base.predicted.n_present, n)
    sizes.update(reference_predictions=base.predicted.n_present, current_predictions=n)
    if proba is not None and base.scores is not None:
        scores = sort_numeric(cls.scores_of(proba))
        prediction_results["scores:ks"] = decision.result_of(
            ks, run_test(ks, base.scores, scores), "prediction", "scores", config, base.scores.n_finite,
            int(scores.finite.size))
    performance: dict[str, Any] = {"task": "classification", "classes": list(base.classes)}
    performance.update({f"baseline_{k}": v for k, v in base.performance.items() if k != "rows_with_label"})
    if labels is None:
        return label_result, concept_results, prediction_results, performance, model_quality, sizes
    labs = cls.as_labels(labels)
    if labs.size != n:
        raise ValueError(f"labels have {labs.size} values but there are {n} predictions; pass one per row")
    keep = pd.notna(labs)
    labs, preds_l = labs[keep], preds[keep]
    proba_l = None if proba is None else proba[keep]
    if labs.size == 0:
        model_quality["issues"].append("no_labels")
        return label_result, concept_results, prediction_results, performance, model_quality, sizes
    label_result = decision.result_of(chi2, run_test(chi2, cls.table(base.labels, labs)), "data",
                                      label_name, config, base.labels.n_present, int(labs.size))
    performance.update(cls.metrics(labs, preds_l, proba_l, base.classes))
    sizes.update(reference_labels=base.labels.n_present, current_labels=int(labs.size))
    if isinstance(base.loss, NumericProfile) and proba_l is not None:
        welch = get_test("welch_t")
        loss = sort_numeric(cls.row_excess_loss(labs, proba_l, base.classes))
        concept_results["excess_log_loss:welch_t"] = decision.result_of(
            welch, run_test(welch, base.loss, loss), "concept", "excess_log_loss", config,
            base.loss.n_finite, int(loss.finite.size))
    elif isinstance(base.loss, CategoricalProfile):
        right = np.where(labs == preds_l, "right", "wrong").astype(object)
        concept_results["loss:chi2"] = decision.result_of(
            chi2, run_test(chi2, cls.table(base.loss, right)), "concept", "zero_one_loss", config,
            base.loss.n_present, int(labs.size))
    return label_result, concept_results, prediction_results, performance, model_quality, sizes
