"""The manifests' pods, as podman runs them: the container's args, its environment (ConfigMap,
Secret, env), its securityContext, its /tmp volume, its limits, its ports and its probes, all read
from deploy/local/schedule-trigger.yaml (the local overlay, rendered; a deploy test keeps the two
equal). What a pod needs that podman spells differently is translated here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.deploy.support import LOCAL_MANIFEST, Doc, find, ident, load, pod_spec

DEFAULT_GRACE_SECONDS = 30  # Kubernetes' terminationGracePeriodSeconds when a pod sets none


@dataclass(frozen=True)
class Pod:
    workload: str
    args: list[str]
    env: dict[str, str]
    options: list[str]  # podman run options: user, read-only root, /tmp, capabilities, limits
    ports: dict[str, int]  # the container's port names -> numbers
    probes: dict[str, tuple[str, int]]  # livenessProbe/readinessProbe -> (path, container port)
    metrics: tuple[str, int] | None  # the prometheus.io annotations' (path, port)
    grace_seconds: int


def manifest() -> list[Doc]:
    return load(LOCAL_MANIFEST)


def pod(kind: str, name: str, docs: list[Doc] | None = None) -> Pod:
    docs = docs if docs is not None else manifest()
    workload = find(docs, kind, name)
    spec = pod_spec(workload)
    assert spec is not None, ident(workload)
    (container,) = spec["containers"]
    ports = {port.get("name", str(port["containerPort"])): port["containerPort"]
             for port in container.get("ports", [])}  # fmt: skip
    probes = {}
    for probe in ("livenessProbe", "readinessProbe"):
        if probe in container:
            check = container[probe]["httpGet"]
            port = check["port"]
            probes[probe] = (check["path"], ports[port] if isinstance(port, str) else port)
    return Pod(
        workload=ident(workload),
        args=[*container.get("command", [])[1:], *container.get("args", [])],
        env=environment(docs, container),
        options=security_options(spec, container) + volume_options(spec, container)
        + limit_options(container),
        ports=ports,
        probes=probes,
        metrics=metrics_endpoint(workload),
        grace_seconds=int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)),
    )  # fmt: skip


def environment(docs: list[Doc], container: Doc) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= find(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
        else:
            secret = find(docs, "Secret", source["secretRef"]["name"])
            assert "data" not in secret, "base64 data: decode it here if the Secret ever uses it"
            env |= secret.get("stringData", {})
    for variable in container.get("env", []):
        env[variable["name"]] = variable["value"]
    return env


def security_options(spec: Doc, container: Doc) -> list[str]:
    context = spec.get("securityContext", {}) | container.get("securityContext", {})
    options = []
    if "runAsUser" in context:
        options.append(f"--user={context['runAsUser']}:{context.get('runAsGroup', 0)}")
    if context.get("readOnlyRootFilesystem"):
        # podman would add tmpfs mounts of its own to a read-only root; Kubernetes adds none.
        options += ["--read-only", "--read-only-tmpfs=false"]
    options += [f"--cap-drop={cap}" for cap in context.get("capabilities", {}).get("drop", [])]
    if context.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    return options


def volume_options(spec: Doc, container: Doc) -> list[str]:
    """An emptyDir becomes a tmpfs of its size limit: writable, empty, gone with the container."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    options = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"only emptyDir volumes are translated: {volume}"
        size = quantity_bytes(volume["emptyDir"].get("sizeLimit", "64Mi"))
        options.append(f"--tmpfs={mount['mountPath']}:rw,size={size},mode=1777")
    return options


def limit_options(container: Doc) -> list[str]:
    limits = container.get("resources", {}).get("limits", {})
    options = []
    if "memory" in limits:
        options.append(f"--memory={quantity_bytes(limits['memory'])}")
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        options.append(f"--cpus={int(cpu[:-1]) / 1000 if cpu.endswith('m') else float(cpu)}")
    return options


def metrics_endpoint(workload: Doc) -> tuple[str, int] | None:
    template: dict[str, Any] = workload["spec"].get("template", {})
    annotations = template.get("metadata", {}).get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true":
        return None
    return annotations["prometheus.io/path"], int(annotations["prometheus.io/port"])


def quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)
