"""An S3 inbox: CSV or Parquet files (features + target) land under s3://bucket/prefix; each is
evaluated exactly once, even across restarts, because its (key, ETag) is recorded in
``processed_objects`` in the same commit as its evaluation.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import urlparse

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from monitor.models import ProcessedObject
from monitor.settings import MonitorSettings
from monitor.sources import Batch

log = logging.getLogger(__name__)
READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class InboxUnavailable(Exception):
    """The object store did not answer; the inbox is retried at the next tick."""


def parse_inbox(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"S3 inbox {uri!r} is not s3://BUCKET/PREFIX")
    return parsed.netloc, parsed.path.lstrip("/")


class S3Inbox:
    def __init__(self, settings: MonitorSettings, sessions: sessionmaker) -> None:
        self.settings = settings
        self.sessions = sessions
        self._client = None

    def client(self):  # noqa: ANN201 - boto3 clients have no importable type
        if self._client is None:
            import boto3
            from botocore.config import Config

            secret = self.settings.aws_secret_access_key
            self._client = boto3.client(
                "s3", endpoint_url=self.settings.s3_endpoint_url,
                aws_access_key_id=self.settings.aws_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
                config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2},
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"),
            )
        return self._client

    def pending(self, model_name: str, inbox: str, limit: int = 20) -> Iterator[Batch]:
        """New files in the inbox for this model, oldest key first, as batches (not yet marked done)."""
        bucket, prefix = parse_inbox(inbox)
        try:
            objects = []
            for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                objects += [o for o in page.get("Contents", []) if _reader(o["Key"])]
        except Exception as exc:  # noqa: BLE001 - botocore raises many types for "not reachable"
            raise InboxUnavailable(f"S3 inbox s3://{bucket}/{prefix} unavailable: {exc}") from exc
        with self.sessions() as session:
            done = {(k, e) for k, e in session.execute(
                sa.select(ProcessedObject.key, ProcessedObject.etag).where(
                    ProcessedObject.model_name == model_name, ProcessedObject.bucket == bucket))}
        fresh = [o for o in sorted(objects, key=lambda o: o["Key"])
                 if (o["Key"], o["ETag"].strip('"')) not in done][:limit]
        for obj in fresh:
            key, etag = obj["Key"], obj["ETag"].strip('"')
            try:
                body = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as exc:  # noqa: BLE001
                raise InboxUnavailable(f"cannot read s3://{bucket}/{key}: {exc}") from exc
            try:
                frame = _read(body, _reader(key))
            except Exception as exc:  # noqa: BLE001 - an unreadable file is rejected, not retried forever
                log.warning("s3://%s/%s is not readable as %s: %s", bucket, key, _reader(key), exc)
                frame = pd.DataFrame()
            yield Batch(batch_id=f"s3:{bucket}/{key}@{etag}"[:255], source="s3", frame=frame,
                        meta={"processed_object": {"model_name": model_name, "bucket": bucket,
                                                   "key": key, "etag": etag}})


def _reader(key: str) -> str | None:
    lower = key.lower()
    return next((kind for ext, kind in READERS.items() if lower.endswith(ext)), None)


def _read(body: bytes, kind: str | None) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(body)) if kind == "csv" else pd.read_parquet(io.BytesIO(body))
