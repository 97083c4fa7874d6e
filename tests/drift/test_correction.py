"""Multiple-testing corrections on hand-checked examples."""

import numpy as np
import pytest

from monitor.drift.correction import adjust_pvalues

P = [0.01, 0.04, 0.03, 0.20]


def test_no_correction_keeps_the_p_values():
    assert adjust_pvalues(P, "none").tolist() == P


def test_bonferroni_multiplies_by_the_family_size_and_caps_at_one():
    assert np.allclose(adjust_pvalues(P, "bonferroni"), [0.04, 0.16, 0.12, 0.80])
    assert adjust_pvalues([0.3, 0.5], "bonferroni").tolist() == [0.6, 1.0]


def test_holm_steps_down_and_stays_monotone():
    # sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.20
    assert np.allclose(adjust_pvalues(P, "holm"), [0.04, 0.09, 0.09, 0.20])


def test_benjamini_hochberg_steps_up_and_stays_monotone():
    # sorted 0.01, 0.03, 0.04, 0.20 times 4/1, 4/2, 4/3, 4/4 -> 0.04, 0.06, 0.0533, 0.20 -> 0.04, 0.0533, ...
    assert np.allclose(adjust_pvalues(P, "bh"), [0.04, 0.16 / 3, 0.16 / 3, 0.20])


def test_holm_rejects_what_bonferroni_rejects_and_sometimes_more():
    p = [0.011, 0.012, 0.5]
    assert (adjust_pvalues(p, "bonferroni") < 0.05).tolist() == [True, True, False]
    p = [0.013, 0.02, 0.5]
    assert (adjust_pvalues(p, "bonferroni") < 0.05).tolist() == [True, False, False]
    assert (adjust_pvalues(p, "holm") < 0.05).tolist() == [True, True, False]


def test_an_empty_family_gives_an_empty_result():
    assert adjust_pvalues([], "holm").size == 0


def test_an_unknown_method_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="holm"):
        adjust_pvalues(P, "sidak")
