"""The alerts and the dashboard of deploy/monitoring: promtool checks the rules and runs their unit
tests on synthetic series; the PrometheusRule is the same rules; the rules and the dashboard name
only metrics (and labels) the code exports, and the dashboard shows every one of them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from keeperhub_scheduler.telemetry import metrics
from tests.deploy.support import (
    DEPLOY,
    OVERLAYS,
    ROOT,
    find,
    pod_labels,
    pod_spec,
    promtool,
    rendered,
)

MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
RULE_TESTS = MONITORING / "prometheus-rules.test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
OURS = re.compile(r"\bkeeperhub_scheduler_\w+")
# Labels that scraping adds (Kubernetes service discovery, the Prometheus operator), not the code.
TARGET_LABELS = {"namespace", "pod", "container", "instance", "job", "endpoint", "service"}
# Metrics of kube-state-metrics that the rules use (the CronJob, Deployment and restart alerts).
KUBE_STATE_METRICS = {
    "kube_deployment_status_replicas_available",
    "kube_job_status_failed",
    "kube_cronjob_status_last_schedule_time",
    "kube_pod_container_status_restarts_total",
}


def run(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    return list(group["rules"])


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}


def exported() -> dict[str, set[str]]:
    """Every sample name /metrics can show -> its labels: the metrics of telemetry/metrics.py."""
    names: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            labels = set(metric._labelnames)
            for suffix in SUFFIXES[metric._type]:
                names[metric._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        elif isinstance(metric, metrics.BatchHistogram):  # ours, without labels
            for suffix in SUFFIXES["histogram"]:
                names[metric.name + suffix] = {"le"} if suffix == "_bucket" else set()
    assert {name for name in names if name.endswith("_total")}, "it defines counters"
    return names


def selectors(expression: str) -> list[tuple[str, set[str]]]:
    """(metric, the label names it is matched on) for each of our metrics in a PromQL expression."""
    found = []
    for match in re.finditer(r"\b(keeperhub_scheduler_\w+)(\{[^}]*\})?", expression):
        matchers = re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", match.group(2) or "")
        found.append((match.group(1), set(matchers)))
    return found


def grouping_labels(expression: str) -> set[str]:
    return {
        label.strip()
        for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expression)
        for label in clause.split(",")
        if label.strip()
    }


# --- the rules ----------------------------------------------------------------------------------


def test_promtool_checks_the_rules():
    result = run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    result = run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_quiet():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    for rule in rules():
        name = rule["alert"]
        mine = [check for check in checks if check["alertname"] == name]
        assert any(check["exp_alerts"] for check in mine), f"{name} is never tested firing"
        assert any(not check["exp_alerts"] for check in mine), f"{name} is never tested quiet"


def test_the_unit_tests_fail_when_a_threshold_changes(tmp_path):
    """The tests above can fail: a backlog threshold of 5000 keeps the backlog alert quiet."""
    text = RULES.read_text()
    changed = text.replace('state="visible"}) > 1000', 'state="visible"}) > 5000')
    assert changed != text
    (tmp_path / RULES.name).write_text(changed)
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    result = run("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "KeeperHubSchedulerQueueBacklog" in result.stdout + result.stderr


def test_the_prometheusrule_is_the_rules_file():
    (rule,) = [doc for doc in rendered(MONITORING) if doc["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text()), "run deploy/monitoring/render.sh"
    before = (MONITORING / "prometheusrule.yaml").read_text()
    subprocess.run([str(MONITORING / "render.sh")], check=True, timeout=60)
    assert (MONITORING / "prometheusrule.yaml").read_text() == before, "render.sh changed it"


def test_the_podmonitor_scrapes_the_ports_the_pods_serve_metrics_on():
    (monitor,) = [doc for doc in rendered(MONITORING) if doc["kind"] == "PodMonitor"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    docs = rendered(OVERLAYS / "aws")
    for name in ("schedule-dispatcher", "schedule-executor"):
        deployment = find(docs, "Deployment", name)
        assert pod_labels(deployment)[expression["key"]] in expression["values"]
        (container,) = pod_spec(deployment)["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert ports[endpoint["port"]] == int(annotations["prometheus.io/port"])
        assert endpoint["path"] == annotations["prometheus.io/path"]


def test_the_runbook_names_every_alert_and_its_files():
    runbook = RUNBOOK.read_text()
    for rule in rules():
        assert rule["alert"] in runbook, rule["alert"]
    for name in ("prometheus-rules.yaml", "prometheusrule.yaml", "grafana-dashboard.json"):
        assert f"deploy/monitoring/{name}" in runbook, name


# --- metrics and labels the code exports ---------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["rules", "dashboard"],
)
def test_only_metrics_and_labels_the_code_exports(source):
    known = exported()
    expressions = (
        [rule["expr"] for rule in rules()] if source == "rules" else dashboard_expressions()
    )
    assert expressions
    problems = []
    for expression in expressions:
        used = selectors(expression)
        assert used or source == "rules", expression
        for name, matched in used:
            if name not in known:
                problems.append(f"{name}: not exported (telemetry/metrics.py)")
            elif matched - known[name] - TARGET_LABELS:
                problems.append(f"{name}: no label {sorted(matched - known[name])}")
        available = set().union(*(known.get(name, set()) for name, _ in used)) | TARGET_LABELS
        if used and grouping_labels(expression) - available:
            problems.append(f"grouped by {sorted(grouping_labels(expression) - available)}")
        others = set(re.findall(r"\b(kube_\w+)", expression))
        problems += [f"{name}: not a kube-state-metrics metric we use"
                     for name in others - KUBE_STATE_METRICS]  # fmt: skip
    assert not problems, "\n".join(problems)


def test_the_dashboard_shows_every_metric():
    shown = {name for expression in dashboard_expressions() for name in OURS.findall(expression)}
    families = {name.removesuffix("_total") for name in shown}
    families |= {re.sub(r"_(bucket|count|sum)$", "", name) for name in shown}
    missing = {family.name for family in metrics.REGISTRY.collect()} - families
    assert not missing, f"metrics no panel shows: {sorted(missing)}"


def test_the_dashboard_queries_are_promql(tmp_path):
    """promtool parses each query (Grafana's variables replaced by what they stand for)."""
    expressions = [
        expression.replace("$__rate_interval", "1m").replace("$namespace", ".*")
        for expression in dashboard_expressions()
    ]
    check = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{number}", "expr": expression}
        for number, expression in enumerate(expressions)
    ]}]}  # fmt: skip
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(check))
    result = run("check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_an_importable_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "keeperhub-scheduler"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
