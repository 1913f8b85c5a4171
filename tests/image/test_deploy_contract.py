"""What deploy/ runs, the image accepts: every container command of the rendered manifests (local
and AWS overlays, the stand-in's Deployment) answers `--help` inside the image, and every set of
variables a manifest gives a container is one the image's settings read and accept.

tests/deploy/test_contract.py checks the same against the source tree; this checks the installed
image, which is what a cluster runs (a module left out of the wheel, a console script missing, a
dependency not in the lock would pass there and fail here).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from tests.deploy.support import manifest_sets, scheduler_containers
from tests.deploy.test_contract import RUNTIME_VARIABLES, invocations
from tests.image.podman import Podman

# The AWS overlay's Secret lives in the operator's secret store (docs/runbook.md): these are its
# keys, with values of the right shape.
AWS_SECRET = {
    "DATABASE_URL": "postgresql://scheduler:secret@db.example:5432/keeperhub",
    "SCHEDULER_SERVICE_API_KEY": "service-key",
    "SCHEDULER_SIGNING_KEY": "signing-key",
    "SCHEDULER_API_TOKENS": "token-one-0123456789,token-two-0123456789",
}

# Run inside the image: for each container, the names of its environment that the settings do not
# read, and the error (one line) of loading the settings from exactly that environment, or null.
SETTINGS_PROBE = r"""
import json, os, sys
from keeperhub_scheduler.config import ConfigError, Settings, load_settings
known = {name.upper() for name in Settings.model_fields}
runtime = set(json.loads(sys.argv[2]))
report = {}
for where, (env, needs_database) in json.loads(sys.argv[1]).items():
    os.environ.clear()
    os.environ.update(env)
    try:
        settings = load_settings()
        if needs_database:
            settings.database
        error = None
    except ConfigError as problem:
        error = str(problem)
    report[where] = {"unread": sorted(set(env) - known - runtime), "error": error}
print(json.dumps(report))
"""


def test_every_container_command_of_the_manifests_answers_help_inside_the_image(
    containers: Podman,
) -> None:
    commands = sorted({tuple(argv) for _, argv in invocations()})
    assert {("migrate",), ("queue", "setup"), ("dispatcher", "--once"), ("dispatcher",),
            ("executor",), ("api",)} <= set(commands)  # fmt: skip

    def help_of(number_and_argv: tuple[int, tuple[str, ...]]) -> tuple[tuple[str, ...], str]:
        number, argv = number_and_argv
        args = [*argv, "--help"] if argv != ("--help",) else ["--help"]
        result = containers.run(
            f"help-{number}", ["--read-only", "--read-only-tmpfs=false"], args, network="none"
        )
        return argv, "" if result.returncode == 0 else f"exit {result.returncode}: {result.stderr}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {argv: error for argv, error in pool.map(help_of, enumerate(commands)) if error}
    assert not failures, "\n".join(
        f"keeperhub-scheduler {' '.join(argv)} --help: {error}" for argv, error in failures.items()
    )


def environments() -> dict[str, tuple[dict[str, str], bool]]:
    """For every container that runs the image: (its environment, whether its command needs the
    database: all but the KeeperHub stand-in)."""
    found = {}
    for source, objects in manifest_sets().items():
        if source.endswith("/base"):
            continue  # no ConfigMap or Secret of its own: every overlay adds them
        data = {
            (doc["kind"], doc["metadata"]["name"]): {**doc.get("data", {}),
                                                     **doc.get("stringData", {})}
            for doc in objects
            if doc["kind"] in ("ConfigMap", "Secret")
        }  # fmt: skip
        for workload, container in scheduler_containers(objects):
            env: dict[str, str] = {}
            for reference in container.get("envFrom", []):
                kind = "ConfigMap" if "configMapRef" in reference else "Secret"
                name = next(iter(reference.values()))["name"]
                if (kind, name) not in data:
                    assert (kind, name) == ("Secret", "scheduler-secrets"), (source, name)
                    env |= AWS_SECRET
                else:
                    env |= data[kind, name]
            env |= {variable["name"]: variable["value"] for variable in container.get("env", [])}
            where = f"{source}: {workload['kind']} {workload['metadata']['name']}"
            found[where] = (env, container.get("args", [""])[0] != "standin")
    return found


def test_every_environment_the_manifests_give_is_read_and_accepted_by_the_image(
    containers: Podman,
) -> None:
    envs = environments()
    assert any("overlays/aws" in where for where in envs)
    assert any("schedule-trigger.yaml" in where for where in envs)
    result = containers.run(
        "settings-probe",
        ["--read-only", "--read-only-tmpfs=false", "--entrypoint=python"],
        ["-c", SETTINGS_PROBE, json.dumps(envs), json.dumps(sorted(RUNTIME_VARIABLES))],
        network="none",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == set(envs)
    problems = [
        f"{where}: {'unread: ' + ', '.join(found['unread']) if found['unread'] else ''}"
        f"{found['error'] or ''}"
        for where, found in sorted(report.items())
        if found["unread"] or found["error"]
    ]
    assert not problems, "\n".join(problems)
