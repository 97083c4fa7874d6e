"""The artifact store behind the tracking server's proxy: S3, with no presigned URLs handed out.

MLflow 3.17 advertises multipart (presigned) downloads and uploads whenever the proxied store is
S3, and clients then fetch models straight from the S3 endpoint *as the server names it*
(`http://minio:9000` in compose), which a team member's machine can neither resolve nor reach,
nor should it need to. This repository does everything S3ArtifactRepository does by delegation,
but is not one of MLflow's multipart/presigned mixins, so the server advertises neither and every
byte goes through the proxy, as `--serve-artifacts` promises. Registered for the `driftline-s3`
scheme (pyproject's `mlflow.artifact_repository` entry point); tracking/entrypoint.py maps
`s3://` destinations onto it.
"""

from __future__ import annotations

from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

SCHEME = "driftline-s3"


def to_proxied(uri: str) -> str:
    """`s3://bucket/prefix` -> `driftline-s3://bucket/prefix`; other URIs unchanged."""
    return f"{SCHEME}://{uri[len('s3://') :]}" if uri.startswith("s3://") else uri


class ProxiedS3ArtifactRepository(ArtifactRepository):
    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self._s3 = S3ArtifactRepository("s3://" + artifact_uri.split("://", 1)[1])

    def log_artifact(self, local_file, artifact_path=None):
        return self._s3.log_artifact(local_file, artifact_path)

    def log_artifacts(self, local_dir, artifact_path=None):
        return self._s3.log_artifacts(local_dir, artifact_path)

    def list_artifacts(self, path=None):
        return self._s3.list_artifacts(path)

    def _download_file(self, remote_file_path, local_path):
        return self._s3._download_file(remote_file_path, local_path)

    def delete_artifacts(self, artifact_path=None):
        return self._s3.delete_artifacts(artifact_path)
