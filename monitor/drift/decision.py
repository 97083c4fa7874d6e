"""From test outcomes to decisions: thresholds, the distance rule, multiple-testing correction, verdicts."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.drift.config import DriftConfig
from monitor.drift.correction import adjust_pvalues
from monitor.drift.report import DriftKind, TestResult, Verdict
from monitor.drift.stattests import Outcome, StatTest


def distances_decide(config: DriftConfig, n_reference: int, n_current: int) -> bool:
    """Whether tests without a p-value decide drift for samples of these sizes (see DriftConfig)."""
    if config.distances_decide == "always":
        return True
    if config.distances_decide == "never":
        return False
    return min(n_reference, n_current) >= config.large_sample


def result_of(
    test: StatTest,
    outcome: Outcome,
    kind: DriftKind,
    target: str,
    config: DriftConfig,
    n_reference: int,
    n_current: int,
) -> TestResult:
    """Raw decision of one outcome; p-value tests get their adjusted decision later in ``correct``."""
    threshold = config.threshold(test.name, test.default_threshold)
    if test.has_pvalue:
        return TestResult(
            test=test.name,
            kind=kind,
            target=target,
            statistic=outcome.statistic,
            p_value=outcome.p_value,
            threshold=threshold,
            drift=bool(outcome.p_value is not None and outcome.p_value < threshold),
        )
    drift = bool(outcome.statistic >= threshold)
    return TestResult(
        test=test.name,
        kind=kind,
        target=target,
        statistic=outcome.statistic,
        p_value=None,
        threshold=threshold,
        drift=drift,
        adjusted_drift=drift,
        decides=distances_decide(config, n_reference, n_current),
    )


def untested(test: StatTest, kind: DriftKind, target: str, config: DriftConfig, note: str) -> TestResult:
    """A test that could not run (no usable value); it never reads as "no drift": drift is None."""
    return TestResult(
        test=test.name,
        kind=kind,
        target=target,
        statistic=None,
        p_value=None,
        threshold=config.threshold(test.name, test.default_threshold),
        drift=None,
        decides=False,
        note=note,
    )


def joint_applies(config: DriftConfig) -> bool:
    """Whether the configuration lets a joint test decide data drift (closed testing needs FWER control)."""
    return (
        config.joint_test != "none"
        and config.correction in ("holm", "bonferroni")
        and config.alpha_split == "by_kind"
    )


def correct(results: Iterable[TestResult], config: DriftConfig, joint: TestResult | None = None,
            reserved: dict[str, int] | None = None) -> int:
    """Adjust every p-value of the batch as one family; returns the family size.

    With ``alpha_split="by_kind"`` each kind k (data, concept, prediction) with m_k of the m tests is
    corrected on its own at level alpha * m_k / m; reported adjusted p-values are scaled by m / m_k so
    they compare with alpha directly. The levels add up to alpha: family-wise error <= alpha.

    ``joint`` (a data-kind test of "the joint distribution of the inputs is unchanged", which implies
    every per-feature null) is closed testing within the data kind's level: the joint test decides the
    data verdict, and a feature test counts only when the joint test and its own Holm step both reject,
    so its adjusted p-value is max(joint p, Holm-adjusted p). Gating a procedure that already controls
    the family-wise error only removes rejections, and without any drift the joint test alone is at
    level alpha_data, so the data kind's family-wise error stays at or under its share.

    ``reserved`` counts tests per kind that will join later (a batch pushed without labels: its
    concept tests run when the labels come). They count in m, so every kind tested now gets the level
    it would have had with the labels, and the tests that come later find their share of alpha unspent.
    """
    family = [r for r in results if r.p_value is not None and r.decides]
    m = len(family) + sum((reserved or {}).values())
    split = config.alpha_split == "by_kind" and config.correction != "none"
    groups: dict[str, list[TestResult]] = {}
    for result in family:
        groups.setdefault(result.kind if split else "all", []).append(result)
    for members in groups.values():
        adjusted = adjust_pvalues([r.p_value for r in members], config.correction)
        scale = m / len(members)
        gate = joint if joint is not None and split and members[0].kind == "data" else None
        if gate is not None:
            assert gate.p_value is not None
            gate.adjusted_p_value = float(min(1.0, gate.p_value * scale))
            gate.adjusted_drift = bool(gate.adjusted_p_value < gate.threshold)
        for result, p_adj in zip(members, adjusted, strict=True):
            if gate is not None:
                p_adj = max(p_adj, gate.p_value)
            result.adjusted_p_value = float(min(1.0, p_adj * scale))
            result.adjusted_drift = bool(result.adjusted_p_value < result.threshold)
            if gate is not None and not gate.adjusted_drift:
                result.adjusted_drift = False
    if joint is not None and joint.adjusted_p_value is None:
        joint.decides = False  # no data-kind family to test it in
        joint.note = "not in the family: no per-feature p-value test decides"
    return m


def verdict(kind: str, results: Iterable[TestResult]) -> Verdict:
    """Detected when any deciding result drifted after correction; drivers name target and test."""
    drivers = [r for r in results if r.counts]
    features = list(dict.fromkeys(r.target for r in drivers))
    return Verdict(
        kind=kind,
        detected=bool(drivers),
        drivers=[f"{r.target}:{r.test}" for r in drivers],
        features=features,
    )
