"""What an operator sees: ``/metrics`` of the long-running dispatcher, and the one JSON summary
line ``--once`` writes for the CronJob's log."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    MINUTE,
    add_planned_schedule,
    add_workflow,
    count_runs,
    db_now,
    floor_minute,
    keeperhub_write,
    runs_of,
    skips,
)
from tests.support import processes
from tests.support.standin import free_port

PREFIX = "keeperhub_scheduler_"


def add_mixed_schedules(url: str) -> None:
    now = db_now(url)
    for n in range(5):
        add_planned_schedule(url, f"busy-{n}", "* * * * * *", decided_through=now)
    add_planned_schedule(url, "paused", "* * * * * *", decided_through=now, paused_at=now)
    add_planned_schedule(url, "off", "* * * * * *", decided_through=now, workflow_enabled=False)
    add_workflow(url, "wf-broken")
    keeperhub_write(
        url,
        "INSERT INTO workflow_schedules (id, workflow_id, cron_expression)"
        " VALUES ('broken', 'wf-broken', '* * 32 * *')",
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def status(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return int(answer.status)


async def test_the_long_running_dispatcher_serves_its_metrics(
    database_url: str, queue: QueueEndpoint, tmp_path: Path
) -> None:
    add_mixed_schedules(database_url)
    port = free_port()
    env = processes.environment(database_url, queue) | {"SCHEDULER_HEALTH_PORT": str(port)}
    dispatcher = processes.spawn(["dispatcher"], env, tmp_path / "dispatcher.log")
    try:
        deadline = time.monotonic() + 60
        while count_runs(database_url, "status = 'enqueued'") < 15:
            assert time.monotonic() < deadline, "no runs relayed"
            time.sleep(0.5)
        time.sleep(1.5)  # at least one more pass, so the metrics have caught up with those
        assert status(port, "/healthz") == 200
        assert status(port, "/readyz") == 200
        metrics = scrape(port)
    finally:
        assert processes.kill(dispatcher, signal.SIGTERM) == 0

    def value(name: str, **labels: str) -> float:
        return metrics[(PREFIX + name, tuple(sorted(labels.items())))]

    fired_in_db = len([run for run in runs_of(database_url) if run["status"] != "skipped"])
    assert 15 <= value("occurrences_decided_total", outcome="fired") <= fired_in_db
    assert 15 <= value("runs_relayed_total") <= fired_in_db
    assert value("relay_failures_total") == 0
    assert value("skipped_total", stage="dispatcher", reason="paused") >= 1
    assert value("skipped_total", stage="dispatcher", reason="workflow_disabled") >= 1
    assert value("occurrences_decided_total", outcome="skipped") >= 2
    assert value("invalid_schedules_total") == 1
    assert value("runs_swept_total") == 0
    assert value("dispatch_lag_seconds_count") >= 15
    assert value("dispatch_lag_seconds_sum") >= 0
    assert value("claim_duration_seconds_count") >= 1
    assert value("outbox_pending") >= 0
    # The skip rows the counters stand for are in the history too, one growing row each.
    assert [reason for reason, *_ in skips(runs_of(database_url, "paused"))] == ["paused"]
    assert [reason for reason, *_ in skips(runs_of(database_url, "off"))] == ["workflow_disabled"]


async def test_once_logs_one_json_summary_line_with_the_counts(
    database_url: str, queue: QueueEndpoint
) -> None:
    last_decided = floor_minute(db_now(database_url)) - 4 * MINUTE
    add_planned_schedule(database_url, "late", "* * * * *", decided_through=last_decided)
    add_planned_schedule(
        database_url,
        "late-all",
        "* * * * *",
        decided_through=last_decided,
        misfire_policy="fire_all",
    )
    add_workflow(database_url, "wf-broken")
    keeperhub_write(
        database_url,
        "INSERT INTO workflow_schedules (id, workflow_id, cron_expression)"
        " VALUES ('broken', 'wf-broken', 'every tuesday')",
    )
    result = processes.run(["dispatcher", "--once"], processes.environment(database_url, queue))
    assert result.returncode == 0, result.stderr[-2000:]

    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    summaries = [line for line in lines if line["msg"] == "dispatcher pass"]
    assert len(summaries) == 1
    summary = summaries[0]
    runs = runs_of(database_url)
    fired = [run for run in runs if run["status"] != "skipped"]
    coalesced = sum(count or 0 for reason, _, _, count in skips(runs) if reason == "coalesced")
    assert summary["level"] == "info"
    assert summary["schedules"] == 3
    assert summary["invalid"] == 1
    assert summary["fired"] == summary["relayed"] == len(fired) >= 6
    assert summary["skipped"] == {"coalesced": coalesced}
    assert coalesced >= 2  # 4 minutes late: 3 missed, the latest of them fired
    assert summary["relay_failed"] == summary["pending"] == summary["left_over"] == 0
    assert summary["seconds"] > 0
