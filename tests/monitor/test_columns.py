"""``select_columns`` gives what ``frame[names]`` gives (monitor/columns.py)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from monitor.columns import select_columns


def _batch() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x0": rng.uniform(0, 1, 50), "n": rng.integers(0, 9, 50),
                          "city": rng.choice(["a", "b", None], 50), "flag": rng.random(50) > 0.5,
                          "y": rng.normal(size=50)})
    frame.loc[3, "x0"] = np.nan
    return pd.read_csv(io.BytesIO(frame.to_csv(index=False).encode()))  # as a pushed CSV is parsed


@pytest.mark.parametrize("names", [["x0", "n"], ["y", "x0"], ["city", "flag", "n"], ["x0"], []])
def test_equals_a_list_selection(names):
    frame = _batch()
    got = select_columns(frame, names)
    pd.testing.assert_frame_equal(got, frame[names])
    assert got is not frame
    for name in got.select_dtypes("number").columns:  # a copy, as frame[names] is: the batch is untouched
        got[name] = got[name].to_numpy() * 0
        got.loc[0, name] = -1
    pd.testing.assert_frame_equal(frame, _batch())


def test_the_same_columns_in_order_are_the_frame_itself():
    frame = _batch()
    assert select_columns(frame, list(frame.columns)) is frame
    pd.testing.assert_frame_equal(select_columns(frame, list(reversed(frame.columns))),
                                  frame[list(reversed(frame.columns))])


def test_missing_and_duplicated_columns_answer_as_pandas_does():
    frame = _batch()
    with pytest.raises(KeyError, match="nope"):
        select_columns(frame, ["x0", "nope"])
    doubled = pd.concat([frame[["x0"]], frame[["x0", "n"]]], axis=1)
    pd.testing.assert_frame_equal(select_columns(doubled, ["n"]), doubled[["n"]])
