"""Static checks of deploy/kubernetes/, offline: no cluster, nothing downloaded at run time.

The Kustomize base is rendered by `kubectl kustomize` (Debian's kubernetes-client where no kubectl
is installed: ops/system_packages.py), validated against the Kubernetes JSON schemas that the
`kubernetes-validate` package bundles (strict: an unknown field fails), linted by checkov (its own
venv, `make tools`), and held to docker-compose.yml: the same images, commands and environment
variable names per service, with every secret from a Secret and none written inline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.test_containers import (
    ROOT,
    SECRET_NAME,
    container_argv,
    dockerfile_exec_form,
    generated_env,
    run_compose,
    stage_text,
)

KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
SECRET_TEMPLATE = KUSTOMIZE_DIR / "secret.example.yaml"
CHECKOV_BIN = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_CONFIG = KUSTOMIZE_DIR / ".checkov.yaml"
# The oldest Kubernetes whose schemas the package bundles, and the newest: the manifests use only
# APIs both know (apps/v1, batch/v1 CronJob, policy/v1 PodDisruptionBudget).
K8S_VERSIONS = ("1.25.0", latest_version())
# Which compose service each Kubernetes workload runs (container name -> compose service).
WORKLOADS = {
    ("Deployment", "tracking"): "tracking",
    ("Job", "tracking-migrate"): "tracking-migrate",
    ("Deployment", "monitor"): "monitor",
    ("Job", "trainer"): "trainer",
    ("CronJob", "trainer-retrain"): "trainer",
}
# Secrets that are database URLs (their password inside): secret by content, not by name.
SECRET_URLS = {"TRACKING_BACKEND_URI", "TRACKING_AUTH_DB_URI", "MONITOR_DATABASE_URL"}
IMAGE_UID = 10001


# --- rendering ---------------------------------------------------------------------------------------

def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl not found: make test installs Debian's kubernetes-client (ops/system_packages.py)"
    return found


def render(directory: Path = KUSTOMIZE_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture(scope="module")
def rendered_text() -> str:
    proc = render()
    assert proc.returncode == 0, f"kubectl kustomize failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def docs(rendered_text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered_text) if doc]


def find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def workloads(docs: list[dict]) -> Iterator[dict]:
    yield from (d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"))


@pytest.fixture(scope="module")
def compose_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    proc = run_compose(tmp_path_factory.mktemp("compose-k8s"), generated_env(), "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUSTOMIZE_DIR.glob("*.yaml") if not p.name.startswith(".")}
    on_disk -= {"kustomization.yaml", SECRET_TEMPLATE.name}
    assert listed == on_disk
    assert SECRET_TEMPLATE.name not in listed, "the secret template must never be applied"


def test_render_has_every_part_and_no_secret(docs: list[dict]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "tracking"), ("Service", "tracking"), ("PodDisruptionBudget", "tracking"),
            ("Job", "tracking-migrate"), ("Deployment", "monitor"), ("Service", "monitor"),
            ("Job", "trainer"), ("CronJob", "trainer-retrain"), ("ConfigMap", "driftline-config")} <= kinds
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created by the operator, not shipped"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"driftline"}


# --- schemas -------------------------------------------------------------------------------------------

def schema_errors(docs: list[dict], version: str) -> list[str]:
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    return errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(docs: list[dict], version: str) -> None:
    assert schema_errors(docs, version) == []


def test_schema_check_rejects_an_unknown_field_and_a_wrong_type(docs: list[dict]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(find(docs, "Deployment", "tracking")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    assert len(schema_errors([broken], K8S_VERSIONS[-1])) == 1
    broken = yaml.safe_load(yaml.safe_dump(find(docs, "Deployment", "tracking")))
    broken["spec"]["replicas"] = "two"
    assert len(schema_errors([broken], K8S_VERSIONS[-1])) == 1


# --- the security linter ---------------------------------------------------------------------------------

def checkov(manifest: Path) -> dict:
    assert CHECKOV_BIN.is_file(), f"checkov missing at {CHECKOV_BIN}: run make tools (make test does)"
    proc = subprocess.run(
        [str(CHECKOV_BIN), "--config-file", str(CHECKOV_CONFIG), "--file", str(manifest)],
        capture_output=True, text=True, timeout=300, check=False,
        # Offline: no Prisma Cloud key, no download of policies or of a newer checkov.
        env={"PATH": "/usr/bin:/bin", "HOME": str(manifest.parent), "LOG_LEVEL": "ERROR",
             "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "BC_SKIP_MAPPING": "TRUE"},
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def failed_checks(report: dict) -> list[str]:
    return sorted(f"{c['check_id']} {c['resource']}: {c['check_name']}"
                  for c in report.get("results", {}).get("failed_checks", []))


def test_checkov_finds_nothing(rendered_text: str, tmp_path: Path) -> None:
    manifest = tmp_path / "driftline.yaml"
    manifest.write_text(rendered_text)
    report = checkov(manifest)
    assert failed_checks(report) == []
    assert report["summary"]["passed"] > 50, report["summary"]


def test_checkov_flags_a_root_writable_pod(rendered_text: str, tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(rendered_text) if d]
    tracking = find(docs, "Deployment", "tracking")
    spec = pod_spec(tracking)
    del spec["securityContext"]
    del spec["containers"][0]["securityContext"]
    manifest = tmp_path / "weak.yaml"
    manifest.write_text(yaml.safe_dump(tracking))
    flagged = {line.split()[0] for line in failed_checks(checkov(manifest))}
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23"} <= flagged, flagged


# --- parity with docker-compose.yml -------------------------------------------------------------------

def k8s_argv(container: dict, target: str) -> list[str]:
    """What the container runs: `command` replaces the image's ENTRYPOINT, `args` its CMD."""
    dockerfile = stage_text(target)
    command = container.get("command")
    args = container.get("args")
    if command is None:
        command = dockerfile_exec_form(dockerfile, "ENTRYPOINT") or []
        if args is None:
            args = dockerfile_exec_form(dockerfile, "CMD") or []
    return list(command) + list(args or [])


def image_repository(image: str) -> str:
    return re.sub(r"(@sha256:[0-9a-f]+|:[\w.-]+)$", "", image)


@pytest.mark.parametrize(("workload", "service"), list(WORKLOADS.items()), ids=[n for _, n in WORKLOADS])
def test_workloads_run_what_compose_runs(docs: list[dict], compose_model: dict, workload: tuple[str, str],
                                         service: str) -> None:
    kind, name = workload
    (container,) = pod_spec(find(docs, kind, name))["containers"]
    spec = compose_model["services"][service]
    target = spec["build"]["target"]
    assert image_repository(container["image"]) == image_repository(spec["image"])
    assert k8s_argv(container, target) == container_argv(service, spec)
    k8s_names = {env["name"] for env in container["env"]}
    compose_names = set(spec["environment"])
    assert k8s_names - compose_names == set(), "Kubernetes passes names compose does not"
    assert compose_names - k8s_names == set(), "compose passes names Kubernetes does not"


def test_images_are_the_dockerfile_targets(docs: list[dict]) -> None:
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    assert {i["name"] for i in kustomization["images"]} == {"driftline/tracking", "driftline/trainer",
                                                            "driftline/monitor"}
    for doc in workloads(docs):
        for container in pod_spec(doc)["containers"]:
            repository = image_repository(container["image"])
            assert repository.startswith("driftline/")
            stage_text(repository.removeprefix("driftline/"))  # a stage of that name exists


# --- secrets ----------------------------------------------------------------------------------------------

def env_sources(docs: list[dict]) -> Iterator[tuple[str, str, dict]]:
    for doc in workloads(docs):
        for container in pod_spec(doc)["containers"]:
            for env in container.get("env", []):
                yield f"{doc['kind']}/{doc['metadata']['name']}", env["name"], env


def test_every_secret_comes_from_the_secret(docs: list[dict]) -> None:
    inline = [f"{where}: {name}" for where, name, env in env_sources(docs)
              if (SECRET_NAME.search(name) or name in SECRET_URLS or name.endswith("_USERNAME")
                  or name.startswith("AWS_")) and "secretKeyRef" not in env.get("valueFrom", {})]
    assert inline == []
    credentials_in_url = re.compile(r"://[^/\s:@]*:[^@/\s]+@")
    assert not [w for w, _, env in env_sources(docs) if credentials_in_url.search(env.get("value", ""))]
    config = find(docs, "ConfigMap", "driftline-config")["data"]
    assert not [key for key in config if SECRET_NAME.search(key) or key in SECRET_URLS]
    assert not [d for d in docs if d["kind"] in ("Deployment", "Job", "CronJob")
                and "envFrom" in json.dumps(d)], "explicit env only: names are checked against compose"


def test_secret_template_has_every_key_and_only_placeholders(docs: list[dict]) -> None:
    template = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert template["kind"] == "Secret" and template["metadata"]["name"] == "driftline"
    used = {env["valueFrom"]["secretKeyRef"]["key"] for _, _, env in env_sources(docs)
            if "secretKeyRef" in env.get("valueFrom", {})}
    assert {env["valueFrom"]["secretKeyRef"]["name"] for _, _, env in env_sources(docs)
            if "secretKeyRef" in env.get("valueFrom", {})} == {"driftline"}
    assert set(template["stringData"]) == used
    for key, value in template["stringData"].items():
        if SECRET_NAME.search(key) or key in SECRET_URLS or key.startswith("AWS_"):
            assert "change-me" in value or key == "ALERTMANAGER_URL", f"{key}: a placeholder, not a secret"


def test_config_keys_referenced_exist(docs: list[dict]) -> None:
    config = find(docs, "ConfigMap", "driftline-config")["data"]
    missing = {env["valueFrom"]["configMapKeyRef"]["key"] for _, _, env in env_sources(docs)
               if "configMapKeyRef" in env.get("valueFrom", {})
               and not env["valueFrom"]["configMapKeyRef"].get("optional")} - set(config)
    assert missing == set()


# --- availability, one-shot steps, hardening ------------------------------------------------------------

def test_tracking_replicas_wait_for_the_one_shot_migration(docs: list[dict]) -> None:
    tracking = find(docs, "Deployment", "tracking")
    assert tracking["spec"]["replicas"] >= 2
    (container,) = pod_spec(tracking)["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    config = find(docs, "ConfigMap", "driftline-config")["data"]
    assert config["TRACKING_MIGRATE_ON_START"] == "false"
    # The startup probe outlasts the wait for the migration, so a waiting replica is not killed.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > float(config["TRACKING_DB_WAIT_SECONDS"])
    migrate = find(docs, "Job", "tracking-migrate")
    assert pod_spec(migrate)["containers"][0]["args"] == ["migrate"]
    pdb = find(docs, "PodDisruptionBudget", "tracking")
    labels = tracking["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert find(docs, "Service", "tracking")["spec"]["selector"].items() <= labels.items()


def test_monitor_replicas_and_probes(docs: list[dict]) -> None:
    monitor = find(docs, "Deployment", "monitor")
    assert monitor["spec"]["replicas"] >= 2
    (container,) = pod_spec(monitor)["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    labels = monitor["spec"]["template"]["metadata"]["labels"]
    assert find(docs, "Service", "monitor")["spec"]["selector"].items() <= labels.items()


def test_retraining_is_scheduled_and_never_overlaps(docs: list[dict]) -> None:
    cron = find(docs, "CronJob", "trainer-retrain")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(cron["spec"]["schedule"].split()) == 5
    assert pod_spec(cron)["containers"][0]["args"] == ["train"]


def test_every_pod_is_non_root_read_only_and_bounded(docs: list[dict]) -> None:
    uid = re.findall(r"^USER\s+(\d+)", stage_text("base"), re.MULTILINE)
    assert uid and int(uid[-1]) == IMAGE_UID, "the images run as a numeric non-root user"
    for doc in workloads(docs):
        spec = pod_spec(doc)
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == IMAGE_UID, where
        assert spec["automountServiceAccountToken"] is False, where
        mounted = set()
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where}: {kind}"
            mounted |= {m["mountPath"] for m in container["volumeMounts"]}
        # The paths the services write to on a read-only root: scratch, working dir, HOME (gunicorn).
        assert {"/tmp", "/app", "/home/driftline"} <= mounted, where
        assert all("emptyDir" in v for v in spec["volumes"]), where


def test_render_fails_on_a_broken_kustomization(tmp_path: Path) -> None:
    for path in KUSTOMIZE_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "kustomization.yaml").write_text(
        (KUSTOMIZE_DIR / "kustomization.yaml").read_text().replace("  - monitor.yaml\n", "  - monitr.yaml\n"))
    proc = render(tmp_path)
    assert proc.returncode != 0 and "monitr.yaml" in proc.stderr
