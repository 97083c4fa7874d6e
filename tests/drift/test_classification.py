"""Classifier scoring in the engine: the same numbers as scipy and scikit-learn, one Holm family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp, ttest_ind
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, recall_score

from monitor.drift import DriftConfig, DriftDetector, ReferenceProfile
from monitor.drift.classification import fit_classification, row_excess_loss


def frame(rows: int, seed: int, shift: float = 0.0, flip: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, rows)
    colour = rng.choice(["red", "blue"], rows)
    logit = 2 * x + np.where(colour == "red", 0.5, -0.5)
    y = rng.random(rows) < 1 / (1 + np.exp(logit if flip else -logit))
    return pd.DataFrame({"x": x, "colour": colour, "label": np.where(y, "pos", "neg")})


def fitted(with_proba: bool = True):
    train = frame(2000, 1)
    design = lambda f: np.column_stack([f["x"], f["colour"] == "red"])  # noqa: E731
    model = LogisticRegression().fit(design(train), train["label"])
    reference = frame(600, 2)
    detector = DriftDetector(DriftConfig()).fit(reference[["x", "colour"]])
    proba = model.predict_proba(design(reference)) if with_proba else None
    detector.profile_.classification = fit_classification(
        reference["label"], model.predict(design(reference)), proba, model.classes_, 10)
    detector.profile_.metadata["target"] = "label"
    return detector, model, design, reference


def test_classifier_tests_match_scipy_and_join_one_family():
    detector, model, design, reference = fitted()
    batch = frame(300, 3, shift=0.4)
    preds, proba = model.predict(design(batch)), model.predict_proba(design(batch))
    report = detector.score(batch[["x", "colour"]], predictions=preds, labels=batch["label"],
                            probabilities=proba)
    counts = lambda a, b: np.array([[np.sum(a == c) for c in ("neg", "pos")],  # noqa: E731
                                    [np.sum(b == c) for c in ("neg", "pos")]])
    label = report.features["label"]["chi2"]
    expected = chi2_contingency(counts(reference["label"].to_numpy(), batch["label"].to_numpy()),
                                correction=False)
    assert label.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    assert label.kind == "data"
    ref_preds = model.predict(design(reference))
    classes = report.prediction["predicted_classes:chi2"]
    assert classes.p_value == pytest.approx(
        chi2_contingency(counts(ref_preds, preds), correction=False).pvalue, rel=1e-9, abs=1e-12)
    scores = report.prediction["scores:ks"]
    assert scores.p_value == pytest.approx(
        ks_2samp(model.predict_proba(design(reference))[:, 1], proba[:, 1]).pvalue, rel=1e-9, abs=1e-12)
    excess = report.concept["excess_log_loss:welch_t"]
    ref_excess = row_excess_loss(reference["label"].to_numpy(), model.predict_proba(design(reference)),
                                 ["neg", "pos"])
    cur_excess = row_excess_loss(batch["label"].to_numpy(), proba, ["neg", "pos"])
    assert excess.p_value == pytest.approx(ttest_ind(ref_excess, cur_excess, equal_var=False).pvalue,
                                           rel=1e-9, abs=1e-12)
    # features (KS on x, chi2 on colour, chi2 on the label) + 2 prediction tests + 1 concept test
    assert report.settings["family_size"] == 6
    perf = report.performance
    assert perf["accuracy"] == pytest.approx(accuracy_score(batch["label"], preds), abs=1e-12)
    assert perf["log_loss"] == pytest.approx(log_loss(batch["label"], proba, labels=["neg", "pos"]),
                                             abs=1e-12)
    assert perf["brier"] == pytest.approx(brier_score_loss(batch["label"] == "pos", proba[:, 1]), abs=1e-12)
    recall = recall_score(batch["label"], preds, labels=["neg", "pos"], average=None)
    assert [perf["per_class_recall"][c] for c in ("neg", "pos")] == pytest.approx(list(recall), abs=1e-12)


def test_a_flipped_relation_is_concept_drift_only_and_survives_a_profile_round_trip():
    detector, model, design, _ = fitted()
    restored = DriftDetector.from_profile(ReferenceProfile.from_bytes(detector.profile_.to_bytes()))
    batch = frame(300, 4, flip=True)
    preds, proba = model.predict(design(batch)), model.predict_proba(design(batch))
    report = restored.score(batch[["x", "colour"]], predictions=preds, labels=batch["label"],
                            probabilities=proba)
    assert (report.data_drift, report.concept_drift, report.prediction_drift) == (False, True, False)
    assert report.performance["accuracy"] < 0.5 * report.performance["baseline_accuracy"]


def test_without_probabilities_the_concept_test_is_chi2_on_right_and_wrong():
    detector, model, design, _ = fitted(with_proba=False)
    batch = frame(300, 5, flip=True)
    report = detector.score(batch[["x", "colour"]], predictions=model.predict(design(batch)),
                            labels=batch["label"])
    assert set(report.concept) == {"loss:chi2"} and report.concept_drift is True
    assert "log_loss" not in report.performance and set(report.prediction) == {"predicted_classes:chi2"}


def test_integral_float_labels_match_integer_classes():
    from monitor.drift.classification import as_labels

    assert list(as_labels(np.array([0.0, 1.0, 1.0]))) == ["0", "1", "1"]
    assert list(as_labels(np.array([0, 1]))) == ["0", "1"]
