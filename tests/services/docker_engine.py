"""A Docker engine for the container tests: the one that answers, or a `dockerd` started here.

An engine this module starts is stopped by its PID when the session ends; one that was already
running is left alone. Images stay in the engine's data root, so a second run reuses them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def engine_answers(timeout: float = 10) -> bool:
    if not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def docker_engine(state_dir: Path, start_timeout: float = 60) -> Iterator[str]:
    """Yields how the engine came to be ('running' or 'started pid N')."""
    if engine_answers():
        yield "running"
        return
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise RuntimeError(
            "no Docker engine answers and dockerd is missing: apt-get install docker.io "
            "(make test-containers does)"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "dockerd.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [dockerd, "--storage-driver", "overlay2", "--pidfile", str(state_dir / "dockerd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + start_timeout
        while not engine_answers(timeout=5):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (state_dir / "dockerd.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"dockerd did not answer within {start_timeout:.0f} s:\n{tail}")
            time.sleep(0.5)
        yield f"started pid {proc.pid}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
