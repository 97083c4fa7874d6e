"""The wheel as a user receives it: built from a clean checkout, holding every file the services read.

Local mode's editable install reads templates straight from the checkout, so a wheel without them
once passed every other test and failed in the monitor image (TemplateNotFound).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, meta

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("seed_scenarios", "tracking", "model_registry", "trainer", "monitor")
# Build recipes and docs that live beside the code but are never read at run time.
NOT_RUNTIME = {"Dockerfile"}


def tracked_files() -> list[str]:
    """What a clean checkout of this tree holds: tracked files plus new ones git would commit."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    checkout = tmp_path_factory.mktemp("checkout")
    for name in tracked_files():
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(checkout),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("driftline-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_every_file_of_the_service_packages(wheel: zipfile.ZipFile) -> None:
    expected = {f for f in tracked_files() if f.split("/")[0] in PACKAGES and Path(f).name not in NOT_RUNTIME}
    missing = sorted(expected - set(wheel.namelist()))
    assert not missing, f"the wheel lacks files the services read: {missing}"


def test_wheel_holds_dashboard_templates_static_and_migrations(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for required in (
        "monitor/dashboard/templates/dashboard/overview.html",
        "monitor/dashboard/static/dashboard.css",
        "monitor/static/vendor/chart.umd.min.js",
        "monitor/migrations/script.py.mako",
        "monitor/migrations/env.py",
    ):
        assert required in names
    assert any(n.startswith("monitor/migrations/versions/") and n.endswith(".py") for n in names)


def test_templates_from_the_wheel_render(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    """The packaged templates are complete: each parses, and all it extends or includes is there."""
    wheel.extractall(tmp_path)
    templates = tmp_path / "monitor" / "dashboard" / "templates"
    env = Environment(loader=FileSystemLoader(templates))
    names = set(env.list_templates())
    assert "dashboard/overview.html" in names
    for name in names:
        source = env.loader.get_source(env, name)[0]
        referenced = set(meta.find_referenced_templates(env.parse(source)))  # parse raises on bad syntax
        assert referenced - {None} <= names, f"{name} refers to templates the wheel lacks"
