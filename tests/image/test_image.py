"""What the image is, looked at from inside: its user, a read-only root with only /tmp writable,
no installer and no compiler, and the configuration Kubernetes and `docker run` rely on."""

from __future__ import annotations

import json
from typing import Any

from tests.image.podman import Podman, podman

# Run inside the image by its own interpreter; prints what it found as one JSON object.
INSIDE = r"""
import importlib.util, json, os, shutil, tempfile
def writable(directory):
    try:
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError:
        return False
tools = ["pip", "pip3", "uv", "gcc", "cc", "c++", "g++", "clang", "tcc", "as", "ld", "make"]
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(),
    "writable": {d: writable(d) for d in ["/", "/app", "/app/.venv", "/usr/local", "/tmp"]},
    "modules": [m for m in ["pip", "setuptools", "wheel", "ensurepip"]
                if importlib.util.find_spec(m) is not None],
    "tools": {t: shutil.which(t) for t in tools if shutil.which(t)},
}))
"""


def inspect(image: str) -> dict[str, Any]:
    result = podman("image", "inspect", image)
    assert result.returncode == 0, result.stderr
    (found,) = json.loads(result.stdout)
    return dict(found)


def test_runs_as_a_non_root_user_on_a_read_only_root_with_only_tmp_writable(
    containers: Podman,
) -> None:
    # No --user: the image's own USER must already be unprivileged. /tmp is a tmpfs, as the
    # manifests mount an emptyDir there.
    result = containers.run(
        "image-inside",
        ["--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,mode=1777",
         "--entrypoint=python"],
        ["-c", INSIDE],
        network="none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["uid"], found["gid"]) == (10001, 10001)
    assert found["writable"] == {
        "/": False, "/app": False, "/app/.venv": False, "/usr/local": False, "/tmp": True
    }  # fmt: skip


def test_has_no_installer_and_no_compiler(containers: Podman) -> None:
    result = containers.run("image-tools", ["--entrypoint=python"], ["-c", INSIDE], network="none")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["modules"] in ([], ["ensurepip"]), found["modules"]
    assert found["tools"] == {}, f"installers or compilers in the image: {found['tools']}"


def test_image_config_is_what_kubernetes_and_docker_run_rely_on(image: str) -> None:
    found = inspect(image)
    config = found["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["keeperhub-scheduler"]
    assert config["Cmd"] == ["--help"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8000/tcp"}
    # --format docker keeps the HEALTHCHECK (the OCI format has none); it is run for real in
    # test_pipeline.py.
    health = found.get("Healthcheck")
    assert isinstance(health, dict), "no HEALTHCHECK: was the image built with --format docker?"
    assert health["Test"] == ["CMD", "python", "/app/healthcheck.py"]
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["PATH"].startswith("/app/.venv/bin:")


def test_the_default_command_prints_the_help(containers: Podman) -> None:
    result = containers.run(
        "image-default", ["--read-only", "--read-only-tmpfs=false"], [], network="none"
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: keeperhub-scheduler" in result.stdout
