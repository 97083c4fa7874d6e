"""Settings of the drift engine: which tests run, how their p-values are corrected, what counts as drift.

One frozen object so a monitor can keep it beside a model version and a report can say how it was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Correction = Literal["none", "bonferroni", "holm", "bh"]
DistanceRule = Literal["auto", "always", "never"]
AlphaSplit = Literal["by_kind", "none"]
JointTest = Literal["energy_mean", "energy", "none"]

CORRECTIONS: tuple[str, ...] = ("none", "bonferroni", "holm", "bh")
ALPHA_SPLITS: tuple[str, ...] = ("by_kind", "none")
DISTANCE_RULES: tuple[str, ...] = ("auto", "always", "never")
JOINT_TESTS: tuple[str, ...] = ("energy_mean", "energy", "none")


@dataclass(frozen=True)
class DriftConfig:
    """What the detector tests and how it decides.

    alpha: family-wise false-alarm target for one scored batch (all p-value tests together).
    correction: multiple-testing control over every p-value test of a batch (features, residuals,
        predictions). Holm keeps the family-wise error at or under alpha and is uniformly more powerful
        than Bonferroni; "bh" controls the false discovery rate instead (more alarms on clean data).
    alpha_split: "by_kind" (default) gives each kind of drift (data, concept, prediction) its share of
        alpha in proportion to its number of tests and corrects within each kind; the shares add up to
        alpha, so the family-wise error stays at or under alpha (union bound), and a strong data-drift
        signal cannot lower the bar of the concept-drift test (Holm over one pooled family would test
        the residuals at the full alpha once the features have rejected, calling ~5 % of pure
        data-drift batches concept drift too). "none" corrects all tests as one pool.
    numeric_tests / categorical_tests: registry names run on every column of that type
        (see ``monitor.drift.stattests.REGISTRY``); ``column_tests`` overrides them per column.
    thresholds: per test name; for p-value tests the level the adjusted p-value is compared with
        (default alpha), for distances the score at or above which the column drifted.
    distances_decide: tests without a p-value (PSI, normalised Wasserstein) and the MSE-ratio
        degradation are always reported; they decide drift when "always", never when "never", and
        with "auto" only when both samples have at least ``large_sample`` rows, where their sampling
        noise is far below their thresholds, so they cannot break the family-wise target.
    psi_bins: number of reference-quantile bins built into a profile at fit time.
    residual_test / prediction_test: registry names of the concept-drift test on residuals and
        the prediction-drift test on the model's outputs (both join the corrected family).
    mse_ratio_threshold: relative degradation (batch MSE / baseline MSE) reported as degraded.
    max_missing_share_increase, max_out_of_range_share, max_new_category_share: data-quality limits.
    joint_test: "energy_mean" (default) pools the evidence of every numeric feature of a small batch in
        one multivariate permutation test that decides the data-drift verdict: the energy distance (any
        change of the joint distribution) and the shift of the standardised column means (the most
        common drift, location), combined by the permutation distribution of the smaller of their two
        p-values, so it stays exact; "energy" uses the energy distance alone. The
        per-feature tests then name the drifted features by closed testing (a feature counts only when
        the joint test and its own Holm-adjusted test both reject, so the family-wise error stays at or
        under the data kind's share of alpha). It runs when reference and batch have at most
        ``joint_max_rows`` complete rows together, the correction is Holm or Bonferroni with
        ``alpha_split="by_kind"``, and every data-drift p-value test is on a numeric feature; otherwise
        the data verdict is the per-feature tests' as before. "none" never runs it.
    joint_max_rows: pooled rows (reference + batch) up to which the joint test runs; its cost grows
        with the square of this number (one N x N distance matrix, ``permutations`` relabellings).
    permutations / permutation_seed: relabellings of the joint test and the seed that draws them (the
        same seed gives the same report for the same batch).
    n_jobs: threads for scoring large batches (None: one per CPU); batches with fewer than
        ``parallel_min_values`` cells are scored in the calling thread.
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    alpha_split: AlphaSplit = "by_kind"
    numeric_tests: tuple[str, ...] = ("ks", "psi", "wasserstein")
    categorical_tests: tuple[str, ...] = ("chi2",)
    column_tests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    distances_decide: DistanceRule = "auto"
    large_sample: int = 1000
    psi_bins: int = 10
    residual_test: str = "ks"
    prediction_test: str = "ks"
    mse_ratio_threshold: float = 1.5
    max_missing_share_increase: float = 0.1
    max_out_of_range_share: float = 0.5
    max_new_category_share: float = 0.0
    joint_test: JointTest = "energy_mean"
    joint_max_rows: int = 1000
    permutations: int = 999
    permutation_seed: int = 0
    n_jobs: int | None = None
    parallel_min_values: int = 200_000

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(
                f"unknown correction {self.correction!r}; choose one of {', '.join(CORRECTIONS)}"
            )
        if self.alpha_split not in ALPHA_SPLITS:
            raise ValueError(
                f"unknown alpha_split {self.alpha_split!r}; choose one of {', '.join(ALPHA_SPLITS)}"
            )
        if self.distances_decide not in DISTANCE_RULES:
            raise ValueError(
                f"unknown distances_decide {self.distances_decide!r}; "
                f"choose one of {', '.join(DISTANCE_RULES)}"
            )
        if self.joint_test not in JOINT_TESTS:
            raise ValueError(
                f"unknown joint_test {self.joint_test!r}; choose one of {', '.join(JOINT_TESTS)}"
            )
        if self.permutations < 1:
            raise ValueError(f"permutations must be at least 1, got {self.permutations}")
        if self.joint_max_rows < 0:
            raise ValueError(f"joint_max_rows must be at least 0, got {self.joint_max_rows}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins must be at least 2, got {self.psi_bins}")
        if self.large_sample < 1:
            raise ValueError(f"large_sample must be at least 1, got {self.large_sample}")
        if self.mse_ratio_threshold <= 0:
            raise ValueError(f"mse_ratio_threshold must be positive, got {self.mse_ratio_threshold}")
        # Frozen dataclass: normalise the mutable-looking inputs once.
        object.__setattr__(self, "numeric_tests", tuple(self.numeric_tests))
        object.__setattr__(self, "categorical_tests", tuple(self.categorical_tests))
        object.__setattr__(self, "column_tests", {k: tuple(v) for k, v in dict(self.column_tests).items()})
        object.__setattr__(self, "thresholds", {k: float(v) for k, v in dict(self.thresholds).items()})
        from monitor.drift.stattests import check_names  # late import: the registry imports no config

        check_names(self.numeric_tests, "numeric")
        check_names(self.categorical_tests, "categorical")
        check_names((self.residual_test, self.prediction_test), "numeric")

    def threshold(self, test_name: str, default: float | None) -> float:
        """The threshold for a test: the configured one, else alpha for p-value tests, else the default."""
        if test_name in self.thresholds:
            return self.thresholds[test_name]
        return self.alpha if default is None else default

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["numeric_tests"] = list(self.numeric_tests)
        data["categorical_tests"] = list(self.categorical_tests)
        data["column_tests"] = {k: list(v) for k, v in self.column_tests.items()}
        data["thresholds"] = dict(self.thresholds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("numeric_tests", "categorical_tests"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)
