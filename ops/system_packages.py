"""`python -m ops.system_packages tests|containers`: the system packages and services the tests drive.

`make test` drives Debian's Alertmanager and Chromium and the machine's PostgreSQL for real, and
renders the Kubernetes manifests with kubectl (Debian's kubernetes-client when none is installed);
`make test-containers` drives a Docker engine built from Debian's `docker.io` and `debootstrap`
(for local stand-in images). Missing packages are installed when this runs as root with apt;
otherwise it prints the exact command to run and fails, before any test starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# package -> the command that proves it is there
PACKAGES = {
    "tests": {
        "prometheus-alertmanager": "/usr/bin/prometheus-alertmanager",
        "chromium": "/usr/bin/chromium",
        "make": "make",
        # `kubectl kustomize` renders deploy/kubernetes/ offline (tests/test_kubernetes.py).
        "kubernetes-client": "kubectl",
    },
    "containers": {"docker.io": "dockerd", "debootstrap": "debootstrap"},
}


def missing(purpose: str) -> list[str]:
    return [
        pkg
        for pkg, probe in PACKAGES[purpose].items()
        if not (Path(probe).exists() if probe.startswith("/") else shutil.which(probe))
    ]


def install(packages: list[str]) -> int:
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            f"system packages missing: {' '.join(packages)}. Install them first, e.g.\n"
            f"  sudo apt-get update && sudo {' '.join(command)}",
            file=sys.stderr,
        )
        return 1
    print(f"system packages: installing {' '.join(packages)} (Debian's archive)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], command):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"system packages: `{' '.join(argv)}` failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
    return 0


def ensure_postgres(host: str = "127.0.0.1", port: int = 5432) -> int:
    """Start the machine's PostgreSQL cluster when it is installed but down (tests create their own DBs)."""
    if os.environ.get("DRIFTLINE_TEST_PG_URL") or not shutil.which("pg_isready"):
        return 0

    def ready() -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", host, "-p", str(port)]).returncode == 0

    if ready():
        return 0
    clusters = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").is_dir() else []
    if not clusters or os.geteuid() != 0:
        print(
            f"PostgreSQL does not answer on {host}:{port}: start it, or set DRIFTLINE_TEST_PG_URL",
            file=sys.stderr,
        )
        return 1
    version = clusters[-1].parent.name
    print(f"PostgreSQL: starting cluster {version}/main")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    for _ in range(30):
        if ready():
            return 0
        time.sleep(1)
    print("PostgreSQL did not become ready within 30 s", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    purpose = argv[0] if argv else "tests"
    if purpose not in PACKAGES:
        print(f"usage: python -m ops.system_packages {'|'.join(PACKAGES)}", file=sys.stderr)
        return 2
    needed = missing(purpose)
    if needed and install(needed) != 0:
        return 1
    return ensure_postgres() if purpose == "tests" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
