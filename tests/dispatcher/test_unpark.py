"""Rows an older engine parked as invalid come back once the engine can read them.

Before cron-parser parity the engine refused ``0 9 ? * MON-FRI``; the dispatcher parked such a row
(next_run_at NULL, plan_key NULL, last_error "invalid schedule: ..."), and it never ran again. The
real dispatcher loop, on real PostgreSQL and a LocalStack queue, must plan it again by itself, fire
what its misfire policy says it missed, and leave the rows it still cannot read parked.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.db.store import parked_key
from keeperhub_scheduler.dispatcher.unpark import Unparked, unpark
from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    add_workflow,
    assert_one_message_per_run,
    db_now,
    drain,
    fired,
    insert_schedule_row,
    occurrences_between,
    run_for,
    running_dispatcher,
    runs_of,
    schedule_row,
    skips,
    utc,
)

# What the old engine wrote on the rows it parked.
OLD_QUESTION_MARK = (
    "invalid schedule: day of month field '?' is not valid: expected a number, a range a-b,"
    " a step */n, a-b/n or a/n, or a list of these"
)
OLD_MINUTE_61 = "invalid schedule: minute 61 is out of range 0-59"


def park_as_old_engine(url: str, schedule_id: str, cron: str, error: str, **columns: Any) -> None:
    """A KeeperHub row as the old dispatcher left it after refusing its expression."""
    add_workflow(url, f"wf-{schedule_id}")
    values = {
        "id": schedule_id,
        "workflow_id": f"wf-{schedule_id}",
        "cron_expression": cron,
        "timezone": "Europe/Berlin",
        "next_run_at": None,
        "plan_key": None,
        "last_status": "error",
        "last_error": error,
        "last_status_for": db_now(url) - timedelta(days=3),
    } | columns
    insert_schedule_row(url, values)


async def test_a_schedule_parked_by_the_old_engine_fires_after_the_upgrade(
    database_url: str, queue: QueueEndpoint
) -> None:
    parked_at = db_now(database_url) - timedelta(days=4)  # a weekday 09:00 is missed since then
    park_as_old_engine(
        database_url,
        "weekdays",
        "0 9 ? * MON-FRI",
        OLD_QUESTION_MARK,
        decided_through=parked_at,
        catchup_window_seconds=5 * 86_400,
    )
    park_as_old_engine(database_url, "minute-61", "61 * * * *", OLD_MINUTE_61)
    # Parked by a newer engine than this one (a rollout's other half): not ours to take back.
    park_as_old_engine(
        database_url, "newer", "0 9 * * *", "invalid schedule: a reason", plan_key=parked_key(99)
    )

    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 3.0)
        woken_by = db_now(database_url)

    weekdays = Timing.of("0 9 ? * MON-FRI", "Europe/Berlin")
    missed = occurrences_between(weekdays, parked_at, woken_by)
    runs = runs_of(database_url, "weekdays")
    # fire_once: the latest missed occurrence runs, the others are recorded as coalesced.
    assert fired(runs) == missed[-1:]
    assert [skip[0] for skip in skips(runs)] == (["coalesced"] if len(missed) > 1 else [])
    row = schedule_row(database_url, "weekdays")
    assert utc(row["next_run_at"]) == weekdays.next_after(woken_by - timedelta(seconds=3))
    assert (row["last_status"], row["last_error"]) == (None, None)
    assert row["plan_key"] == weekdays.plan_key(0)
    assert_one_message_per_run(await drain(queue, expect=1), runs)

    still = schedule_row(database_url, "minute-61")
    assert still["next_run_at"] is None
    assert still["plan_key"] == parked_key()
    assert still["last_error"] == "invalid schedule: minute 61 is out of range 0-59"
    assert runs_of(database_url, "minute-61") == []

    newer = schedule_row(database_url, "newer")
    assert (newer["next_run_at"], newer["plan_key"]) == (None, parked_key(99))


async def test_re_reading_is_done_once_per_engine_version(database_url: str) -> None:
    park_as_old_engine(database_url, "question", "0 9 ? * *", OLD_QUESTION_MARK)
    park_as_old_engine(database_url, "bad", "61 * * * *", OLD_MINUTE_61)
    engine = create_engine(database_url, pool_size=2)
    try:
        assert await unpark(engine, batch_size=1) == Unparked(replanned=1, still_invalid=1)
        assert await unpark(engine) == Unparked()  # both now read by this engine
    finally:
        await engine.dispose()
    woken = schedule_row(database_url, "question")
    assert isinstance(woken["next_run_at"], datetime)  # due: the claim plans it
    assert woken["plan_key"] is None
