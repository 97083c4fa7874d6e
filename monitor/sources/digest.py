"""A batch's content digest: the same rows give the same digest whatever format carried them.

Columns are taken in name order; numeric columns as float64 bytes (so CSV's ``1`` and JSON's ``1.0``
agree), anything else as text. Row order counts: the same rows in another order are another batch.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def rows_digest(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256(f"rows={len(frame)}".encode())
    for name in sorted(frame.columns, key=str):
        column = frame[name]
        digest.update(b"\x00column\x00" + str(name).encode())
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            digest.update(np.ascontiguousarray(values).data)
        else:
            hashed = pd.util.hash_pandas_object(column.astype(str), index=False).to_numpy()
            digest.update(np.ascontiguousarray(hashed).data)
    return digest.hexdigest()
