"""Create `.env` from `.env.example` with fresh random secrets, and read it back.

Secrets are URL-safe because the database password ends up inside connection URLs and
compose would try to expand a `$`. Nothing here prints a secret.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = "change-me"
# Values that must be the same secret, so the stack's own clients can log in.
SAME_AS = {"MLFLOW_TRACKING_PASSWORD": "MLFLOW_AUTH_ADMIN_PASSWORD"}


def parse_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def render_with_secrets(example: str) -> str:
    """The example file with every placeholder replaced by a fresh random secret."""
    generated: dict[str, str] = {}
    lines = []
    for raw in example.splitlines():
        key, sep, value = raw.partition("=")
        if sep and not raw.lstrip().startswith("#") and value.strip() == PLACEHOLDER:
            name = key.strip()
            generated[name] = generated.get(SAME_AS.get(name, ""), "") or secrets.token_urlsafe(24)
            raw = f"{key}={generated[name]}"
        lines.append(raw)
    return "\n".join(lines) + "\n"


def ensure_env_file(repo: Path = REPO) -> tuple[Path, bool]:
    """Returns the path of `.env` and whether it was created now."""
    env_path, example = repo / ".env", repo / ".env.example"
    if env_path.exists():
        return env_path, False
    # Created private (0600) in one step: the secrets are never readable by others, even briefly.
    fd = os.open(env_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render_with_secrets(example.read_text()))
    return env_path, True


def load_env(repo: Path = REPO) -> dict[str, str]:
    env_path, _ = ensure_env_file(repo)
    values = parse_env(env_path.read_text())
    weak = [k for k, v in values.items() if v == PLACEHOLDER]
    if weak:
        raise SystemExit(f"make: .env still has placeholder secrets for {', '.join(weak)}: "
                         "delete .env and run make up to generate new ones")
    return values


def main() -> int:
    path, created = ensure_env_file()
    print(f"env: {'created' if created else 'kept'} {path.relative_to(REPO)}"
          + (" with random secrets" if created else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
