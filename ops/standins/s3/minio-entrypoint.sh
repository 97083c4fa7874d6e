#!/bin/sh
# `minio server DIR [--console-address ADDR]` -> SeaweedFS on DIR with S3 on :9000.
set -eu
[ "${1:-}" = server ] && shift
dir=${1:-/data}
export AWS_ACCESS_KEY_ID="${MINIO_ROOT_USER:?MINIO_ROOT_USER must be set}"
export AWS_SECRET_ACCESS_KEY="${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD must be set}"
mkdir -p "$dir"
exec weed mini -dir="$dir" -ip=127.0.0.1 -ip.bind=0.0.0.0 -s3.port=9000 -admin.ui=false \
    -master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0
