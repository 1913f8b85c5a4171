"""The Makefile: `make help` documents every target, and `make -n <target>` prints the commands the
spec's table describes (nothing runs: no cluster or Docker engine is needed)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.support import LOCAL_MANIFEST, ROOT, find, load

SPEC_TARGETS = {
    "setup-local-kubernetes",
    "deploy-to-local-kubernetes",
    "deploy-scheduler",
    "scheduler-status",
    "scheduler-logs",
    "teardown-scheduler",
    "test-e2e",
}
OUR_TARGETS = {"help", "demo", "check", "test", "test-image", "build-scheduler-image"}


def make(*args: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"make {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def defined_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z0-9][a-zA-Z0-9_-]*):", text, re.M))


def test_help_lists_every_target_with_a_description():
    targets = defined_targets()
    assert targets >= SPEC_TARGETS | OUR_TARGETS
    listed = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", make("help")).splitlines():
        name, _, description = line.strip().partition(" ")
        listed[name] = description.strip()
    assert set(listed) == targets, "every target needs a `## description`"
    assert all(listed.values())


def dry_run(target: str, *variables: str) -> list[str]:
    return [line.strip() for line in make("-n", target, *variables).splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("setup-local-kubernetes", ["deploy/local/setup-local.sh"]),
        (
            "build-scheduler-image",
            [
                "docker build --target scheduler -t keeperhub-scheduler:latest .",
                "minikube image load keeperhub-scheduler:latest",
            ],
        ),
        (
            "deploy-to-local-kubernetes",
            [
                "docker build --target scheduler -t keeperhub-scheduler:latest .",
                "minikube image load keeperhub-scheduler:latest",
                "kubectl apply -f deploy/local/keeperhub-standin.yaml",
                "kubectl rollout status -n local deployment/keeperhub-common --timeout=300s",
            ],
        ),
        (
            "deploy-scheduler",
            [
                "kubectl delete job -n local scheduler-migrate scheduler-queue-setup"
                " --ignore-not-found",
                "kubectl apply -f deploy/local/schedule-trigger.yaml",
                "kubectl wait -n local --for=condition=complete job/scheduler-migrate"
                " job/scheduler-queue-setup --timeout=300s",
                "kubectl rollout status -n local deployment/schedule-executor --timeout=300s",
            ],
        ),
        (
            "scheduler-status",
            [
                'echo "=== Schedule Dispatcher Jobs ==="',
                "kubectl get cronjobs -n local -l app=schedule-dispatcher",
                'echo "=== Schedule Executor ==="',
                "kubectl get pods -n local -l app=schedule-executor",
                'echo "=== LocalStack (SQS) ==="',
                "kubectl get pods -n local -l app=localstack",
            ],
        ),
        (
            "scheduler-logs",
            [
                "kubectl logs -n local -l 'app in (schedule-dispatcher,schedule-executor)'"
                " --prefix --tail=50 --max-log-requests=10 -f"
            ],
        ),
        (
            "teardown-scheduler",
            ["kubectl delete -f deploy/local/schedule-trigger.yaml --ignore-not-found"],
        ),
        ("test-e2e", ["scripts/test.sh tests/e2e"]),
    ],
)
def test_dry_run_prints_the_spec_commands_in_order(target, expected):
    lines = dry_run(target)
    positions = []
    for command in expected:
        shown = "\n".join(lines)
        assert command in lines, f"`make -n {target}` does not run `{command}`:\n{shown}"
        positions.append(lines.index(command))
    assert positions == sorted(positions), f"`make -n {target}` runs them out of order"


def test_deploy_scheduler_applies_the_dispatcher_cronjob_and_the_executor():
    """The spec: `make deploy-scheduler` deploys the dispatcher CronJob and executor Deployment."""
    docs = load(LOCAL_MANIFEST)
    assert find(docs, "CronJob", "schedule-dispatcher")
    assert find(docs, "Deployment", "schedule-executor")
    for name in ("scheduler-migrate", "scheduler-queue-setup"):
        assert find(docs, "Job", name)  # the Jobs the target deletes and waits for


def test_scheduler_status_prints_the_three_sections_of_the_spec():
    output = make("scheduler-status", "KUBECTL=echo kubectl")
    headers = [line for line in output.splitlines() if line.startswith("===")]
    assert headers == [
        "=== Schedule Dispatcher Jobs ===",
        "=== Schedule Executor ===",
        "=== LocalStack (SQS) ===",
    ]


def test_deploy_to_local_kubernetes_delegates_to_a_keeperhub_checkout(tmp_path):
    (tmp_path / "Makefile").write_text(
        "deploy-to-local-kubernetes:\n\t@echo keeperhub deploys itself\n"
    )
    lines = dry_run("deploy-to-local-kubernetes", f"KEEPERHUB_DIR={tmp_path}")
    assert "echo keeperhub deploys itself" in lines
    assert not [line for line in lines if "keeperhub-standin" in line]


def test_every_path_the_makefile_runs_exists():
    text = (ROOT / "Makefile").read_text()
    for path in sorted(set(re.findall(r"\b((?:scripts|deploy)/[\w./-]+)", text))):
        target = ROOT / path
        assert target.exists(), f"the Makefile names {path}, which does not exist"
        if target.suffix == ".sh":
            assert target.stat().st_mode & 0o111, f"{path} is not executable"


def test_help_into_a_pipe_has_no_colour_codes_and_keeps_the_makefile_order():
    text = make("help")
    assert "\x1b[" not in text
    listed = [line.split()[0] for line in text.splitlines()]
    makefile = (ROOT / "Makefile").read_text()
    in_file = re.findall(r"^([a-zA-Z0-9][a-zA-Z0-9_-]*):.*## ", makefile, re.M)
    assert listed == in_file
    assert listed[:2] == ["demo", "test"], "the two user commands come first"
