"""The dispatcher's connections are not pinged before use (a ping is a round trip before every
claim batch, relay mark and outbox read): a connection that died meanwhile (a PostgreSQL restart,
a failover) costs one statement run again on a fresh connection, never a failed pass, a lost
occurrence or a second message."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    add_many_schedules,
    assert_one_message_per_run,
    count_runs,
    db_now,
    drain,
    fired,
    runs_of,
)
from tests.support import postgres, processes

LOST = "database connection was lost; running the statement once more"


def enqueued(database_url: str) -> int:
    return count_runs(database_url, "status = 'enqueued'")


def wait_for_enqueued(database_url: str, at_least: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if enqueued(database_url) >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_connections_killed_under_a_running_dispatcher_cost_no_pass_and_no_duplicate(
    database_url: str, queue: QueueEndpoint, tmp_path: Path
) -> None:
    add_many_schedules(database_url, "lost-", 20, "* * * * * *", db_now(database_url))
    log = tmp_path / "dispatcher.log"
    env = processes.environment(database_url, queue, SCHEDULER_LOG_FORMAT="json")
    dispatcher = processes.spawn(["dispatcher"], env, log)
    try:
        wait_for_enqueued(database_url, 40, "firing")
        for _ in range(3):  # a pooled connection killed more than once, mid-stream
            assert postgres.terminate_connections(database_url) > 0  # the dispatcher's among them
            before = enqueued(database_url)
            wait_for_enqueued(database_url, before + 40, "firing to go on after the kill")
    finally:
        assert processes.kill(dispatcher, signal.SIGTERM) == 0

    lines = log_lines(log)
    messages = [line["msg"] for line in lines]
    assert LOST in messages
    failures = [line for line in lines if line["level"] in ("error", "critical")]
    assert not failures, failures  # no pass failed, nothing logged as an error
    runs = runs_of(database_url)
    assert {run["status"] for run in runs} == {"enqueued"}  # none left behind, none skipped
    assert_one_message_per_run(await drain(queue, expect=len(fired(runs))), runs)
