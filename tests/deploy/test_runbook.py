"""docs/runbook.md stays true: the commands, make targets, metrics and files it names exist."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from keeperhub_scheduler.cli import app
from keeperhub_scheduler.telemetry import metrics
from tests.deploy.support import ROOT
from tests.deploy.test_makefile import defined_targets

RUNBOOK = ROOT / "docs" / "runbook.md"


def text() -> str:
    return RUNBOOK.read_text()


def test_the_runbook_covers_the_spec_troubleshooting_and_the_alerts():
    headings = set(re.findall(r"^#+ (.+)$", text(), re.M))
    assert {
        "Dispatcher not running",
        "Executor not processing messages",
        "Image pull errors",
        "Alerts",
    } <= headings
    alerts = text().split("## Alerts", 1)[1].split("\n## ", 1)[0]
    for topic in (
        "Queue backlog",
        "Oldest message age",
        "DLQ",
        "Dispatch lag",
        "Executor restarts",
        "Dispatcher failures",
    ):
        assert topic in alerts, topic


def test_every_metric_the_runbook_names_exists():
    families = {family.name for family in metrics.REGISTRY.collect()}
    known = {
        family + suffix
        for family in families
        for suffix in ("", "_total", "_bucket", "_sum", "_count")
    }
    named = set(re.findall(r"\b(keeperhub_scheduler_\w+)", text()))
    assert named, "the alerts are built on our metrics"
    assert named <= known, f"no such metric: {sorted(named - known)}"


def test_every_command_and_target_the_runbook_names_exists():
    fenced = re.findall(r"^```\w*\n(.*?)^```", text(), re.M | re.S)
    code = "\n".join(fenced + re.findall(r"`([^`\n]+)`", text()))
    # `-n keeperhub-scheduler` is the AWS namespace, not the command
    for argv in re.findall(r"(?<![\w/.-])(?<!-n )keeperhub-scheduler ((?:[a-z][a-z-]* ?)+)", code):
        words = argv.split()
        result = CliRunner().invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (
            f"docs/runbook.md names `keeperhub-scheduler {argv.strip()}`, which the CLI refuses "
            f"(exit {result.exit_code}; a command not added yet?):\n{result.output}"
        )
    targets = set(re.findall(r"\bmake ([a-z][a-z0-9-]+)", text()))
    assert targets <= defined_targets(), sorted(targets - defined_targets())


def test_every_repository_path_the_runbook_names_exists():
    pattern = r"`((?:deploy/(?:aws|local|kustomize|docker|monitoring)|scripts|docs|src)/[\w./-]+)`"
    for path in set(re.findall(pattern, text())):
        assert (ROOT / path).exists(), path
