"""monitor.parquet_writer: the kept rows read back unchanged; dictionaries only for non-floats."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from monitor.parquet_writer import write_rows


def _encodings(buffer: io.BytesIO) -> dict[str, tuple[str, ...]]:
    meta = pq.ParquetFile(io.BytesIO(buffer.getvalue())).metadata
    group = meta.row_group(0)
    return {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}


def test_rows_read_back_unchanged_with_dictionaries_only_for_non_float_columns() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x0": rng.normal(size=500), "x1": np.where(rng.random(500) < 0.1, np.nan, 1.5),
                          "code": rng.integers(0, 4, 500), "city": rng.choice(["a", "b", None], 500),
                          "__prediction": rng.normal(size=500)})
    buffer = io.BytesIO()
    write_rows(frame, buffer, compression="zstd")
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(buffer.getvalue())), frame)
    encodings = _encodings(buffer)
    dictionary = {name for name, kinds in encodings.items() if any("DICTIONARY" in k for k in kinds)}
    assert dictionary == {"code", "city"}, encodings
    assert pq.ParquetFile(io.BytesIO(buffer.getvalue())).metadata.row_group(0).column(0).compression == "ZSTD"
