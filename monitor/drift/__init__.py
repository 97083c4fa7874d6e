"""Drift engine: pure numpy/scipy, no I/O.

Fit a ``DriftDetector`` on reference data once per model version (it builds a ``ReferenceProfile``),
then ``score`` batches into ``DriftReport`` objects with data, concept and prediction drift verdicts,
per-test results, performance and data quality. See docs/drift.md.
"""

from monitor.drift.config import DriftConfig
from monitor.drift.detector import DriftDetector
from monitor.drift.profile import ReferenceProfile
from monitor.drift.report import DriftReport, TestResult, Verdict

__all__ = ["DriftConfig", "DriftDetector", "DriftReport", "ReferenceProfile", "TestResult", "Verdict"]
