"""Three long-running dispatchers share 1,000 schedules for two and a half minutes.

100 schedules fire every second and 900 every minute, so all three dispatchers reach for the
same rows at the same instants (every second, and 900 at once at the top of each minute). Every
occurrence in the window must have exactly one run and every run exactly one message: none
missing (checked against timing's own occurrences), none twice (counted by runId as the queue
delivers them), and each dispatcher did a share of the work.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.consumer import consuming
from tests.dispatcher.helpers import (
    add_many_schedules,
    assert_one_message_per_run,
    count_runs,
    db_now,
    decoded,
    fired,
    occurrences_between,
    runs_of,
    skips,
)
from tests.support import processes

WINDOW_SECONDS = 150.0
DISPATCHERS = 3
SCHEDULES = {"every-second-": (100, "* * * * * *"), "every-minute-": (900, "* * * * *")}
# Anything due this long before the dispatchers were told to stop must have been decided.
SETTLED = timedelta(seconds=10)


def fired_per_process(log: Path) -> int:
    total = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("msg") == "dispatcher pass":
            total += int(entry["fired"])
    return total


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_three_dispatchers_1000_schedules_every_occurrence_exactly_once(
    database_url: str, queue: QueueEndpoint, tmp_path: Path
) -> None:
    start = db_now(database_url)
    ids: dict[str, list[str]] = {}
    for prefix, (count, cron) in SCHEDULES.items():
        ids[cron] = add_many_schedules(database_url, prefix, count, cron, start)
    env = processes.environment(database_url, queue)
    logs = [tmp_path / f"dispatcher-{n}.log" for n in range(DISPATCHERS)]
    dispatchers = [processes.spawn(["dispatcher"], env, log) for log in logs]
    try:
        async with consuming(queue, receivers=4) as consumer:
            deadline = time.monotonic() + WINDOW_SECONDS
            while time.monotonic() < deadline:
                assert all(d.poll() is None for d in dispatchers), "a dispatcher exited"
                await asyncio.sleep(5)
            stopping = db_now(database_url)
            for dispatcher in dispatchers:
                dispatcher.send_signal(signal.SIGTERM)
            assert [d.wait(timeout=60) for d in dispatchers] == [0] * DISPATCHERS
            assert count_runs(database_url, "status = 'pending'") == 0
            await consumer.wait_for(count_runs(database_url), timeout=120)
            await consumer.wait_until_drained()
    finally:
        for dispatcher in dispatchers:
            if dispatcher.poll() is None:
                processes.kill(dispatcher)

    runs = runs_of(database_url)
    by_schedule: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_schedule.setdefault(run["schedule_id"], []).append(run)
    assert skips(runs) == []
    for cron, schedule_ids in ids.items():
        timing = Timing.of(cron)
        expected = occurrences_between(timing, start, stopping - SETTLED)
        assert expected, cron
        for schedule_id in schedule_ids:
            got = fired(by_schedule.get(schedule_id, []))
            assert got[: len(expected)] == expected, schedule_id  # none missing, none twice
            assert got == occurrences_between(timing, start, got[-1]), schedule_id
    assert_one_message_per_run(decoded(consumer.messages), runs)
    shares = [fired_per_process(log) for log in logs]
    assert sum(shares) == len(runs)
    assert all(share > 0 for share in shares), shares
