"""`make up` picks a Compose v2 that works, or says so and runs local mode (ops/stack.py)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from ops import stack

# Debian's docker.io 20.10 client has no compose plugin: `docker compose ...` is an unknown flag.
OLD_DOCKER = """#!/bin/sh
if [ "$1" = compose ]; then echo "unknown shorthand flag: 'd' in -d" >&2; exit 125; fi
if [ "$1" = info ]; then echo 20.10.24; exit 0; fi
exit 0
"""


def fake_bin(tmp_path: Path, name: str, script: str) -> Path:
    path = tmp_path / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_a_docker_client_without_the_plugin_falls_through_to_the_bundled_compose(tmp_path, monkeypatch):
    fake_bin(tmp_path, "docker", OLD_DOCKER)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    argv = stack.compose_command()
    assert argv is not None and argv[0].endswith("/compose/docker-compose"), argv
    version = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.strip().startswith(("2.", "v2."))


def test_a_standalone_v2_docker_compose_is_preferred_to_the_bundled_one(tmp_path, monkeypatch):
    fake_bin(tmp_path, "docker", OLD_DOCKER)
    fake_bin(tmp_path, "docker-compose", "#!/bin/sh\necho 2.29.7\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert stack.compose_command() == [str(tmp_path / "docker-compose")]


def test_a_v1_or_broken_compose_is_never_chosen(tmp_path, monkeypatch):
    fake_bin(tmp_path, "docker", OLD_DOCKER)
    fake_bin(tmp_path, "docker-compose", "#!/bin/sh\necho 1.29.2\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(
        stack, "compose_candidates", lambda: [["docker", "compose"], [str(tmp_path / "docker-compose")]]
    )
    assert stack.compose_command() is None


def test_make_up_with_an_engine_but_no_compose_says_so_and_runs_local_mode(tmp_path, monkeypatch, capsys):
    fake_bin(tmp_path, "docker", OLD_DOCKER)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("DRIFTLINE_NO_DOCKER", raising=False)
    monkeypatch.setattr(stack, "compose_candidates", lambda: [["docker", "compose"]])
    started: list[str] = []
    monkeypatch.setattr(stack, "status_local", lambda s: started.append("local") or 0)
    assert stack.main(["status"]) == 0
    assert started == ["local"]
    assert "no Compose v2 did" in capsys.readouterr().out
