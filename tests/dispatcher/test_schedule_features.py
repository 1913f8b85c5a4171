"""Per-schedule features under the real dispatcher loop: jitter, pauses, a disabled workflow,
a timing nobody can read, start and end bounds, and interval schedules."""

from __future__ import annotations

from datetime import timedelta

from keeperhub_scheduler.timing import Timing, jitter_offset
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    SECOND,
    add_planned_schedule,
    add_workflow,
    assert_one_message_per_run,
    db_now,
    drain,
    fired,
    keeperhub_write,
    occurrences_between,
    run_for,
    running_dispatcher,
    runs_of,
    schedule_row,
    skips,
    utc,
)
from tests.support import sqs

EVERY_SECOND = "* * * * * *"
EVERY_TWO_SECONDS = "*/2 * * * * *"


async def test_jitter_delays_each_run_by_a_fixed_share_never_past_the_next_occurrence(
    database_url: str, queue: QueueEndpoint
) -> None:
    # Up to a second of jitter: each schedule gets its own share of it, the same every time.
    # Up to an hour: capped at half the two seconds to the next occurrence.
    jitters = {"jitter-a": 1, "jitter-b": 1, "jitter-c": 1, "capped": 3600}
    start = db_now(database_url)
    for schedule_id, jitter in jitters.items():
        add_planned_schedule(
            database_url,
            schedule_id,
            EVERY_TWO_SECONDS,
            decided_through=start,
            jitter_seconds=jitter,
        )
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 5.0)

    timing = Timing.of(EVERY_TWO_SECONDS)
    offsets: dict[str, set[timedelta]] = {}
    all_runs = []
    for schedule_id, jitter in jitters.items():
        runs = runs_of(database_url, schedule_id)
        row = schedule_row(database_url, schedule_id)
        assert fired(runs) == occurrences_between(timing, start, utc(row["decided_through"]))
        assert len(runs) >= 2
        for run in runs:
            offset = run["due_at"] - run["scheduled_for"]
            following = run["scheduled_for"] + 2 * SECOND
            assert offset == jitter_offset(schedule_id, jitter, run["scheduled_for"], following)
            assert timedelta(0) <= offset <= SECOND  # half the gap to the next occurrence
            assert run["enqueued_at"] >= run["due_at"]  # never sent before it is due
            offsets.setdefault(schedule_id, set()).add(offset)
        all_runs += runs
    assert all(len(found) == 1 for found in offsets.values())  # fixed per schedule
    assert len({found.pop() for found in offsets.values()}) == len(jitters)  # spread apart
    assert jitter_offset("capped", 3600, start, start + 2 * SECOND) == SECOND
    # The message carries the occurrence, not the jittered instant.
    assert_one_message_per_run(await drain(queue, expect=len(all_runs)), all_runs)


async def test_a_pause_is_one_growing_skip_row_and_ends_by_itself(
    database_url: str, queue: QueueEndpoint
) -> None:
    start = db_now(database_url)
    paused_until = start + timedelta(seconds=3.5)
    add_planned_schedule(
        database_url,
        "paused",
        EVERY_SECOND,
        decided_through=start,
        paused_at=start,
        paused_until=paused_until,
        paused_note="maintenance window",
    )
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 6.0)

    runs = runs_of(database_url, "paused")
    row = schedule_row(database_url, "paused")
    every = Timing.of(EVERY_SECOND)
    during = [o for o in occurrences_between(every, start, paused_until) if o < paused_until]
    assert skips(runs) == [("paused", during[0], during[-1], len(during))]
    assert fired(runs) == occurrences_between(every, during[-1], utc(row["decided_through"]))
    assert len(fired(runs)) >= 1
    assert (row["paused_at"], row["paused_until"], row["paused_note"]) == (None, None, None)
    assert_one_message_per_run(await drain(queue, expect=len(fired(runs))), runs)


async def test_a_disabled_workflow_records_why_and_sends_nothing_until_enabled(
    database_url: str, queue: QueueEndpoint
) -> None:
    start = db_now(database_url)
    add_planned_schedule(
        database_url, "off", EVERY_SECOND, decided_through=start, workflow_enabled=False
    )
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 3.0)
        assert await sqs.queue_counts(queue) == (0, 0)
        keeperhub_write(database_url, "UPDATE workflows SET enabled = true")
        enabled_at = db_now(database_url)
        await run_for(dispatcher, 2.0)

    runs = runs_of(database_url, "off")
    row = schedule_row(database_url, "off")
    every = Timing.of(EVERY_SECOND)
    (reason, first, last, count) = skips(runs)[0]
    assert len(skips(runs)) == 1
    assert reason == "workflow_disabled"
    assert occurrences_between(every, start, last) == every.next_n(start, count)
    assert first == every.next_after(start)
    assert last < enabled_at + SECOND  # the last occurrence claimed before the workflow came on
    assert fired(runs) == occurrences_between(every, last, utc(row["decided_through"]))
    assert_one_message_per_run(await drain(queue, expect=len(fired(runs))), runs)


async def test_a_timing_nobody_can_read_is_parked_with_the_reason_and_the_rest_fire(
    database_url: str, queue: QueueEndpoint
) -> None:
    add_planned_schedule(database_url, "good", EVERY_SECOND)
    for schedule_id, cron, zone in [
        ("minute-61", "61 * * * *", "UTC"),
        ("mars", "* * * * *", "Mars/Olympus"),
    ]:
        add_workflow(database_url, f"wf-{schedule_id}")
        keeperhub_write(
            database_url,
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone)"
            " VALUES (%s, %s, %s, %s)",
            schedule_id,
            f"wf-{schedule_id}",
            cron,
            zone,
        )
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 2.5)
        for schedule_id, field in (("minute-61", "minute"), ("mars", "Mars/Olympus")):
            row = schedule_row(database_url, schedule_id)
            assert row["next_run_at"] is None  # not claimed again until it is changed
            assert row["last_status"] == "error"
            assert row["last_error"].startswith("invalid schedule:")
            assert field in row["last_error"]
            assert runs_of(database_url, schedule_id) == []
        assert len(fired(runs_of(database_url, "good"))) >= 2

        # KeeperHub fixes the expression: the trigger makes it due, the dispatcher plans it.
        keeperhub_write(
            database_url,
            "UPDATE workflow_schedules SET cron_expression = '* * * * * *' WHERE id = 'minute-61'",
        )
        fixed_at = utc(schedule_row(database_url, "minute-61")["decided_through"])
        await run_for(dispatcher, 2.5)
    row = schedule_row(database_url, "minute-61")
    assert fired(runs_of(database_url, "minute-61")) == occurrences_between(
        Timing.of(EVERY_SECOND), fixed_at, utc(row["decided_through"])
    )
    assert row["next_run_at"] is not None


async def test_start_and_end_bounds_fire_exactly_the_occurrences_between_them(
    database_url: str, queue: QueueEndpoint
) -> None:
    now = db_now(database_url)
    start_at = now + timedelta(seconds=1, microseconds=250_000)
    end_at = now + timedelta(seconds=3, microseconds=750_000)
    add_planned_schedule(
        database_url, "bounded", EVERY_SECOND, decided_through=now, start_at=start_at, end_at=end_at
    )
    assert utc(schedule_row(database_url, "bounded")["next_run_at"]) >= start_at
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 5.5)

    runs = runs_of(database_url, "bounded")
    every = Timing.of(EVERY_SECOND)
    expected = [o for o in occurrences_between(every, now, end_at) if o >= start_at]
    assert fired(runs) == expected
    assert len(expected) >= 2
    assert schedule_row(database_url, "bounded")["next_run_at"] is None  # ended
    assert_one_message_per_run(await drain(queue, expect=len(runs)), runs)


async def test_an_interval_schedule_fires_every_n_seconds_from_its_anchor_to_the_microsecond(
    database_url: str, queue: QueueEndpoint
) -> None:
    now = db_now(database_url)
    anchor = now - timedelta(days=3, microseconds=123_457)
    add_planned_schedule(
        database_url, "every-2s", interval_seconds=2, anchor_at=anchor, decided_through=now
    )
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 5.0)

    runs = runs_of(database_url, "every-2s")
    assert len(runs) >= 2
    for run in runs:
        elapsed = run["scheduled_for"] - anchor
        assert elapsed % timedelta(seconds=2) == timedelta(0)
    row = schedule_row(database_url, "every-2s")
    assert fired(runs) == occurrences_between(
        Timing.of(None, interval_seconds=2, anchor_at=anchor), now, utc(row["decided_through"])
    )
    received = await drain(queue, expect=len(runs))
    assert_one_message_per_run(received, runs)
    # The message's triggerTime keeps the microseconds of the occurrence.
    assert all(
        item.body["triggerTime"].endswith(f"{runs[0]['scheduled_for']:%f}Z") for item in received
    )
