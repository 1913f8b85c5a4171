"""What the deployment runs must exist: every `keeperhub-scheduler` command that a manifest, the
Dockerfile or the Makefile runs answers `--help` with exit code 0 (options included, so a renamed
option fails too), and every environment variable they set for our processes is one the settings
read (``config.Settings``) or one the interpreter itself reads.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from keeperhub_scheduler.cli import app
from keeperhub_scheduler.config import Settings
from tests.deploy.support import (
    LOCAL_MANIFEST,
    ROOT,
    STANDIN_MANIFEST,
    find,
    ident,
    load,
    manifest_sets,
    scheduler_containers,
)

# Variables our image sets for the interpreter and the OS, not for the scheduler's settings.
RUNTIME_VARIABLES = {
    "PATH": "finds the venv's keeperhub-scheduler",
    "HOME": "points at /tmp, the one writable place",
    "PYTHONDONTWRITEBYTECODE": "no .pyc writes into the read-only filesystem",
    "PYTHONUNBUFFERED": "log lines leave at once",
}
SETTINGS = {name.upper() for name in Settings.model_fields}


def invocations() -> Iterator[tuple[str, list[str]]]:
    """(where, argv after `keeperhub-scheduler`) for everything the deployment runs."""
    seen = set()
    for source, objects in manifest_sets().items():
        for workload, container in scheduler_containers(objects):
            argv = [*container.get("command", [])[1:], *container.get("args", [])]
            key = (ident(workload), tuple(argv))
            if key not in seen:
                seen.add(key)
                yield f"{source}: {ident(workload)}", argv

    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r'^ENTRYPOINT \["keeperhub-scheduler"\]$', dockerfile, re.M)
    assert entrypoint, "the image's entrypoint is keeperhub-scheduler"
    for line in re.findall(r"^CMD (\[.*\])$", dockerfile, re.M):
        yield "Dockerfile: CMD", [str(part) for part in eval_json_list(line)]
    for instruction in dockerfile_instructions(dockerfile):
        if instruction.startswith("RUN "):
            for match in re.finditer(r"(?:^|[\s/])keeperhub-scheduler ([^&|;>]+)", instruction):
                yield "Dockerfile: RUN", shlex.split(match.group(1))

    for number, line in enumerate((ROOT / "Makefile").read_text().splitlines(), 1):
        if line.startswith("\t"):
            for match in re.finditer(r"keeperhub-scheduler (?!:)([^\n&|;>]+)", line):
                yield f"Makefile:{number}", shlex.split(match.group(1))


def dockerfile_instructions(text: str) -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [part.strip() for part in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()]


def eval_json_list(text: str) -> list[object]:
    value = json.loads(text)
    assert isinstance(value, list)
    return value


def command_path(argv: list[str]) -> list[str]:
    """The sub-command words at the start of ``argv`` (``queue setup``, ``dispatcher``, ...)."""
    group = typer.main.get_command(app)
    path = []
    for word in argv:
        commands = getattr(group, "commands", None)  # a group (Typer vendors its own click)
        if not commands or word not in commands:
            break
        path.append(word)
        group = commands[word]
    return path


def test_the_deployment_runs_the_commands_we_expect():
    commands = {" ".join(command_path(argv) or argv[:1]) for _, argv in invocations()}
    assert {"migrate", "dispatcher", "executor", "queue setup", "standin", "api"} <= commands


@pytest.mark.parametrize(
    ("where", "argv"),
    list(invocations()),
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_every_command_the_deployment_runs_exists(where, argv):
    if argv == ["--help"]:
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0, result.output
        return
    path = command_path(argv)
    if not path:
        pytest.fail(
            f"{where} runs `keeperhub-scheduler {' '.join(argv)}`, but the CLI has no "
            f"`{argv[0]}` command (yet?): its commands are "
            f"{sorted(typer.main.get_command(app).commands)}",  # type: ignore[attr-defined]
            pytrace=False,
        )
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, (
        f"{where} runs `keeperhub-scheduler {' '.join(argv)}`, which the CLI refuses "
        f"(exit {result.exit_code}):\n{result.output}"
    )


def variables_set() -> Iterator[tuple[str, str]]:
    """(where, variable) for every variable set for a process running our image."""
    for source, objects in manifest_sets().items():
        configmaps = {
            doc["metadata"]["name"]: doc.get("data", {})
            for doc in objects
            if doc["kind"] == "ConfigMap"
        }
        secrets = {
            doc["metadata"]["name"]: {**doc.get("data", {}), **doc.get("stringData", {})}
            for doc in objects
            if doc["kind"] == "Secret"
        }
        for workload, container in scheduler_containers(objects):
            where = f"{source}: {ident(workload)}"
            for variable in container.get("env", []):
                yield where, variable["name"]
            for source_ref in container.get("envFrom", []):
                if "configMapRef" in source_ref:
                    name = source_ref["configMapRef"]["name"]
                    values = configmaps.get(name)
                else:
                    name = source_ref["secretRef"]["name"]
                    values = secrets.get(name)
                if values is None:
                    assert source.startswith("kubectl kustomize deploy/kustomize/overlays/aws") or (
                        "base" in source
                    ), f"{where}: {name} is referenced but not defined"
                    continue  # the AWS Secret comes from the secret store
                for key in values:
                    yield f"{where} via {name}", key

    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime_stage = dockerfile.split(" AS scheduler", 1)[1]
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", runtime_stage, re.M):
        for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", block):
            yield "Dockerfile: ENV (runtime stage)", name


def variables_and_where() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for where, variable in variables_set():
        found.setdefault(variable, []).append(where)
    return found


@pytest.mark.parametrize(("variable", "where"), sorted(variables_and_where().items()))
def test_every_variable_the_deployment_sets_is_read(variable, where):
    assert variable in SETTINGS or variable in RUNTIME_VARIABLES, (
        f"{variable} is set by {'; '.join(where)}, but no setting reads it (config.Settings has "
        f"no {variable.lower()}): a typo, or a setting that was renamed"
    )


def test_local_deployment_sets_what_production_commands_require():
    config = find(load(LOCAL_MANIFEST), "ConfigMap", "scheduler-env")["data"]
    for required in ("DATABASE_URL", "SQS_QUEUE_URL", "KEEPERHUB_URL"):
        assert config.get(required), required
    standin_secret = find(load(STANDIN_MANIFEST), "Secret", "keeperhub-standin")
    assert set(standin_secret["stringData"]) <= SETTINGS
