"""The original's two worst failures, on the real command: a late tick and a repeated tick.

The original matched each cron against "the current minute": a tick that started more than a
minute late lost the occurrence, and a second tick in the same minute sent it again. Ours decides
from the last decided occurrence, so a tick five minutes late still accounts for every occurrence
(fired or skipped, with the reason, per the schedule's misfire policy), and a second ``--once``
finds nothing new to send.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    MINUTE,
    Received,
    add_planned_schedule,
    assert_one_message_per_run,
    db_now,
    drain,
    fired,
    floor_minute,
    occurrences_between,
    running_dispatcher,
    runs_of,
    skips,
)
from tests.support import processes, sqs

GRACE = timedelta(seconds=60)  # SCHEDULER_MISFIRE_GRACE_SECONDS' default
EVERY_MINUTE = Timing.of("* * * * *")

# schedule id -> its policy columns
LATE_SCHEDULES: dict[str, dict[str, Any]] = {
    "late-fire-once": {"misfire_policy": "fire_once"},
    "late-fire-all": {"misfire_policy": "fire_all"},
    "late-skip": {"misfire_policy": "skip"},
    "late-window": {"misfire_policy": "fire_all", "catchup_window_seconds": 180},
}


def once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = processes.run(["dispatcher", "--once"], env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def add_late_schedules(url: str) -> datetime:
    """Every-minute schedules last decided six minutes ago: the next tick is five minutes late."""
    last_decided = floor_minute(db_now(url)) - 6 * MINUTE
    for schedule_id, columns in LATE_SCHEDULES.items():
        add_planned_schedule(url, schedule_id, "* * * * *", decided_through=last_decided, **columns)
    return last_decided


def expected(
    schedule_id: str, occurrences: list[datetime], tick: datetime
) -> tuple[list[datetime], list[tuple[str, datetime, datetime, int]]]:
    """What the policy must make of the occurrences at ``tick``: (fired, skip rows)."""
    late = [o for o in occurrences if tick - o > GRACE]
    on_time = [o for o in occurrences if tick - o <= GRACE]
    policy = LATE_SCHEDULES[schedule_id]
    if schedule_id == "late-window":
        window = timedelta(seconds=policy["catchup_window_seconds"])
        too_old = [o for o in late if tick - o > window]
        return [o for o in occurrences if o not in too_old], [
            ("missed_window", too_old[0], too_old[-1], len(too_old))
        ]
    if policy["misfire_policy"] == "fire_once":
        return [late[-1], *on_time], [("coalesced", late[0], late[-2], len(late) - 1)]
    if policy["misfire_policy"] == "fire_all":
        return occurrences, []
    return on_time, [("misfired", late[0], late[-1], len(late))]


async def test_a_tick_five_minutes_late_accounts_for_every_occurrence_by_policy(
    database_url: str, queue: QueueEndpoint
) -> None:
    last_decided = add_late_schedules(database_url)
    once(processes.environment(database_url, queue))

    all_runs = []
    for schedule_id in LATE_SCHEDULES:
        runs = runs_of(database_url, schedule_id)
        tick = runs[0]["created_at"]  # the dispatcher's clock when it decided them
        occurrences = occurrences_between(EVERY_MINUTE, last_decided, tick)
        assert len(occurrences) >= 6  # 5 minutes late, and the current one
        want_fired, want_skips = expected(schedule_id, occurrences, tick)
        assert fired(runs) == want_fired, schedule_id
        assert skips(runs) == want_skips, schedule_id
        all_runs += runs
    assert_one_message_per_run(await drain(queue, expect=len(fired(all_runs))), all_runs)


async def test_once_twice_in_the_same_minute_sends_nothing_twice(
    database_url: str, queue: QueueEndpoint
) -> None:
    add_late_schedules(database_url)
    env = processes.environment(database_url, queue)
    once(env)
    after_first = runs_of(database_url)
    once(env)
    # And two at once, as overlapping CronJob runs would be.
    with ThreadPoolExecutor(2) as pool:
        for result in pool.map(lambda _: once(env), range(2)):
            assert result.returncode == 0

    runs = runs_of(database_url)
    visible, in_flight = await sqs.queue_counts(queue)
    assert visible + in_flight == len(fired(runs))
    received = await drain(queue, expect=len(fired(runs)))
    assert_one_message_per_run(received, runs)
    # The later passes only ever add occurrences of a minute that began after the first pass.
    first_ids = {run["id"] for run in after_first}
    first_tick = max(run["created_at"] for run in after_first)
    for run in runs:
        if run["id"] not in first_ids:
            assert run["scheduled_for"] > first_tick - timedelta(seconds=1)
    assert_no_occurrence_twice(received)


def assert_no_occurrence_twice(received: list[Received]) -> None:
    occurrences = [(item.message.schedule_id, item.message.scheduled_for) for item in received]
    assert len(occurrences) == len(set(occurrences))


async def test_a_catch_up_larger_than_the_send_buffer_sends_each_run_once(
    database_url: str, queue: QueueEndpoint
) -> None:
    """fire_all after five minutes away: 300 runs per schedule from one claim, more than the
    sender holds at once; what does not fit goes back to the outbox and out from there."""
    away = db_now(database_url) - timedelta(minutes=5)
    for n in range(10):
        add_planned_schedule(
            database_url,
            f"catch-up-{n}",
            "* * * * * *",
            decided_through=away,
            misfire_policy="fire_all",
            max_catchup_runs=1000,
        )
    async with running_dispatcher(database_url, queue) as dispatcher:
        result = await dispatcher.run_pass()
        assert result.fired > 2000  # the sender's buffer holds 2,000
        assert result.relayed == result.fired
        assert result.pending == 0

    runs = runs_of(database_url)
    assert skips(runs) == []
    every_second = Timing.of("* * * * * *")
    for n in range(10):
        own = [run for run in runs if run["schedule_id"] == f"catch-up-{n}"]
        assert fired(own) == occurrences_between(every_second, away, own[-1]["scheduled_for"])
    assert_one_message_per_run(await drain(queue, expect=len(runs), wait=60), runs)
