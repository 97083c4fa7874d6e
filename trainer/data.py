"""Training data: the seed's scenarios, or a user's own table (CSV/Parquet, local or s3://).

Every table goes through `prepare`: target present, every other column numeric, no NaN/inf,
enough rows; then float64 columns, a content fingerprint and a seeded train/hold-out split.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

import seed_scenarios as scenarios
from trainer.errors import DataError

# 20 % of 10 rows leaves 2 hold-out rows: the fewest for which r2 means anything.
MIN_ROWS = 10
DEFAULT_TEST_SIZE = 0.2
DEFAULT_SPLIT_SEED = 42


@dataclass(frozen=True)
class TrainingData:
    """A validated table split into train and hold-out, both float64 with features + target."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    features: tuple[str, ...]
    target: str
    fingerprint: str
    source: str
    split_seed: int = DEFAULT_SPLIT_SEED
    test_size: float = DEFAULT_TEST_SIZE

    @property
    def rows(self) -> int:
        return len(self.train) + len(self.holdout)

    @property
    def split(self) -> dict[str, float | int]:
        return {"split_seed": self.split_seed, "test_size": self.test_size}


def scenario_frames(
    rows: int = 100, seed: int = 42, data_shift: float = 25.0, concept_offset: float = 10.0
) -> dict[str, pd.DataFrame]:
    """The seed's reference, data-drift and concept-drift tables (course defaults)."""
    params = scenarios.ScenarioParams(rows=rows, seed=seed, data_shift=data_shift,
                                      concept_offset=concept_offset)
    return {name: scenarios.make_batch(name, params) for name in scenarios.SCENARIOS}


def generated(rows: int = 100, seed: int = 42, split_seed: int = DEFAULT_SPLIT_SEED,
              test_size: float = DEFAULT_TEST_SIZE) -> TrainingData:
    """The course's reference data, validated and split like any user table."""
    if rows < MIN_ROWS:
        raise DataError(f"--rows {rows} is too few", f"use at least {MIN_ROWS} rows")
    frame = scenarios.make_batch("clean", scenarios.ScenarioParams(rows=rows, seed=seed))
    return prepare(frame, scenarios.TARGET, source=f"generated:clean(rows={rows},seed={seed})",
                   split_seed=split_seed, test_size=test_size)


def load(source: str, target: str, split_seed: int = DEFAULT_SPLIT_SEED,
         test_size: float = DEFAULT_TEST_SIZE) -> TrainingData:
    """A user's table from a local path or s3:// URI, validated and split."""
    return prepare(read_table(source), target, source=source, split_seed=split_seed, test_size=test_size)


def read_table(source: str) -> pd.DataFrame:
    """Read CSV or Parquet (chosen by extension, else by content) from a path or s3:// URI."""
    raw = _read_bytes(source)
    if not raw.strip():
        raise DataError(f"{source} is empty", "give a CSV with a header row or a Parquet file with rows")
    suffix = Path(urlparse(source).path).suffix.lower()
    is_parquet = suffix in (".parquet", ".pq") or (suffix != ".csv" and raw[:4] == b"PAR1")
    try:
        if is_parquet:
            return read_parquet(raw)
        return pd.read_csv(io.BytesIO(raw))
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{source} has no columns", "give a CSV with a header row") from exc
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        kind = "Parquet" if is_parquet else "CSV"
        raise DataError(f"cannot read {source} as {kind} ({_first_line(exc)})",
                        "give a valid .csv or .parquet file") from exc


def read_parquet(raw: bytes | str) -> pd.DataFrame:
    """A Parquet file's bytes, or a local path, as a frame, read on the calling thread."""
    # Not pd.read_parquet: it reads through Arrow's dataset layer, which starts Arrow's
    # thread pool even with use_threads=False, and a pool thread still alive when this
    # short CLI exits can abort it (exit 134, apache/arrow#34314; 4 in 120 runs here).
    # ParquetFile.read on the calling thread starts none.
    # A path is read into memory first: Arrow's own file reader starts its I/O pool.
    import pyarrow as pa
    import pyarrow.parquet as pq  # here, not at the top: 20 ms on every CLI start, CSV or not

    data = raw if isinstance(raw, bytes) else Path(raw).read_bytes()
    table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    return table.to_pandas(use_threads=False)


def _read_bytes(source: str) -> bytes:
    parsed = urlparse(source)
    if parsed.scheme == "s3":
        return _read_s3(parsed.netloc, parsed.path.lstrip("/"), source)
    if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:  # len 1: a Windows drive letter
        raise DataError(f"unsupported data location {source}", "give a local path or an s3:// URI")
    path = Path(parsed.path if parsed.scheme == "file" else source)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"data file {path} does not exist", "check the --data path") from exc
    except OSError as exc:
        raise DataError(f"cannot read data file {path} ({exc.strerror})",
                        "check the path and its permissions") from exc


def _read_s3(bucket: str, key: str, source: str) -> bytes:
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    if not bucket or not key:
        raise DataError(f"{source} is not an s3://bucket/key URI", "give the full object URI")
    client = boto3.client(
        "s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None,
        config=Config(request_checksum_calculation="when_required",
                      response_checksum_validation="when_required",
                      retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
    )
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.NoCredentialsError as exc:
        raise DataError(f"no S3 credentials to read {source}",
                        "set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and MLFLOW_S3_ENDPOINT_URL)") from exc
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise DataError(f"cannot read {source} ({code})",
                        "check the bucket, key and S3 credentials") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise DataError(f"cannot reach S3 for {source} ({exc})",
                        "check MLFLOW_S3_ENDPOINT_URL and the network") from exc


def prepare(frame: pd.DataFrame, target: str, source: str = "frame",
            split_seed: int = DEFAULT_SPLIT_SEED, test_size: float = DEFAULT_TEST_SIZE) -> TrainingData:
    """Validate a table, cast it to float64, fingerprint it and split it."""
    frame = validate(frame, target, source)
    features = tuple(c for c in frame.columns if c != target)
    train, holdout = scenarios.train_test_split(frame, test_size=test_size, seed=split_seed)
    return TrainingData(train=train, holdout=holdout, features=features, target=target,
                        fingerprint=fingerprint(frame), source=source, split_seed=split_seed,
                        test_size=test_size)


def validate(frame: pd.DataFrame, target: str, source: str = "frame") -> pd.DataFrame:
    """The table with the target last and every column float64, or a DataError saying what to fix."""
    columns = [str(c) for c in frame.columns]
    if len(columns) == 0:
        raise DataError(f"{source} has no columns", "give a table with feature columns and a target column")
    if len(set(columns)) != len(columns):
        raise DataError(f"{source} has duplicate column names", "give every column a unique name")
    frame = frame.set_axis(columns, axis=1)
    if target not in columns:
        raise DataError(f"target column {target!r} not found in {source} (columns: {', '.join(columns)})",
                        "pass --target with one of these columns")
    if len(frame) == 0:
        raise DataError(f"{source} has a header but no rows", "give a table with data rows")
    bad = [c for c in columns if not (pd.api.types.is_numeric_dtype(frame[c])
                                       or pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        which = "target" if bad == [target] else "feature" if target not in bad else "feature/target"
        raise DataError(f"non-numeric {which} column(s) in {source}: {', '.join(bad)}",
                        "convert them to numbers or drop them from the table")
    features = [c for c in columns if c != target]
    if not features:
        raise DataError(f"{source} has only the target column {target!r}", "add at least one feature column")
    if len(frame) < MIN_ROWS:
        raise DataError(f"{source} has {len(frame)} rows, too few to train and hold out",
                        f"give at least {MIN_ROWS} rows")
    out = frame[features + [target]].astype("float64")
    values = out.to_numpy()
    if not np.isfinite(values).all():
        broken = [c for c in out.columns if not np.isfinite(out[c].to_numpy()).all()]
        raise DataError(f"missing or infinite values in {source} column(s): {', '.join(broken)}",
                        "drop or fill those rows before training")
    return out.reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over column names and float64 values: same table, same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype="float64")).tobytes())
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
