"""A dispatcher killed between its commit and its send: the runs it decided are not lost, and
each goes out exactly once after a restart.

The window is made real, not simulated: the first dispatcher's queue is unreachable (its
endpoint is a closed port), so every run it commits stays pending, and it is SIGKILLed in the
middle of that. The restarted dispatcher, with the queue back, finds them in the outbox.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

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
from tests.support import processes

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens on it here


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_runs_committed_but_not_sent_are_sent_once_each_after_a_restart(
    database_url: str, queue: QueueEndpoint, tmp_path: Path
) -> None:
    add_many_schedules(database_url, "crash-", 40, "* * * * * *", db_now(database_url))
    env = processes.environment(database_url, queue)
    cut_off = env | {
        "AWS_ENDPOINT_URL": UNREACHABLE,
        "SQS_QUEUE_URL": queue.queue_url.replace(queue.endpoint_url or "", UNREACHABLE),
    }
    first_log = tmp_path / "first.log"
    first = processes.spawn(["dispatcher"], cut_off, first_log)
    try:
        wait_until(
            lambda: "queue refused" in first_log.read_text() and count_runs(database_url) >= 200,
            60,
            "runs decided while the queue is cut off",
        )
        assert first.poll() is None  # the queue being away does not stop it deciding
    finally:
        assert processes.kill(first, signal.SIGKILL) == -signal.SIGKILL
    orphans = runs_of(database_url)
    assert {run["status"] for run in orphans} == {"pending"}

    time.sleep(3.5)  # past any lease the killed process held (the default relay lease, 3 s)
    second = processes.spawn(["dispatcher"], env, tmp_path / "second.log")
    try:
        wait_until(
            lambda: (
                count_runs(database_url, "status = 'pending'") == 0
                and count_runs(database_url, "status = 'enqueued'") > len(orphans)
            ),
            60,
            "the outbox to empty after the restart",
        )
    finally:
        assert processes.kill(second, signal.SIGTERM) == 0
    runs = runs_of(database_url)
    assert {run["status"] for run in runs} == {"enqueued"}
    assert {run["id"] for run in orphans} <= {run["id"] for run in runs}
    assert_one_message_per_run(await drain(queue, expect=len(fired(runs))), runs)
