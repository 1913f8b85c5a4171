"""Schedules written by KeeperHub's own app, by raw SQL: picked up in one tick, fired on the new
timing only. And the PostgreSQL triggers do what the migration's comments say they do.

KeeperHub inserts rows with only the spec's columns (``next_run_at`` NULL or computed by itself),
changes cron and zone in place, toggles ``enabled`` and rewrites ``next_run_at``. It never sets
our planning columns, so the ``keeperhub_scheduler_replan`` trigger hands such rows back to the
dispatcher, which re-plans them from the change instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    SECOND,
    add_planned_schedule,
    add_workflow,
    assert_one_message_per_run,
    connect,
    db_now,
    drain,
    fired,
    keeperhub_write,
    listening,
    notifications,
    occurrences_between,
    run_for,
    running_dispatcher,
    runs_of,
    schedule_row,
    skips,
    timing_of,
    utc,
)

YEARLY = "0 0 1 1 *"
EVERY_SECOND = "* * * * * *"
EVERY_EVEN_SECOND = "*/2 * * * * *"


def next_new_year(after: datetime) -> datetime:
    return datetime(after.year + 1, 1, 1, tzinfo=UTC)


# --- the trigger, on its own ----------------------------------------------------------------
def test_a_keeperhub_insert_is_due_at_once_and_decided_from_its_insert(database_url: str) -> None:
    add_workflow(database_url, "wf-new")
    before = db_now(database_url)
    keeperhub_write(
        database_url,
        "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone)"
        " VALUES ('new', 'wf-new', %s, 'UTC')",
        YEARLY,
    )
    row = schedule_row(database_url, "new")
    assert row["plan_key"] is None
    assert before <= utc(row["decided_through"]) == utc(row["next_run_at"]) <= db_now(database_url)


def test_a_keeperhub_next_run_at_is_replaced_by_now_and_decided_through_kept(
    database_url: str,
) -> None:
    """A moved next_run_at alone (its own computation, maybe wrong) means "recompute it"."""
    add_planned_schedule(database_url, "s", "* * * * *")
    planned = schedule_row(database_url, "s")
    keeperhub_write(
        database_url,
        "UPDATE workflow_schedules SET next_run_at = '2099-01-01T00:00:00Z' WHERE id = 's'",
    )
    row = schedule_row(database_url, "s")
    assert row["plan_key"] is None
    assert utc(row["next_run_at"]) <= db_now(database_url)  # due now, to be recomputed
    assert row["decided_through"] == planned["decided_through"]  # nothing decided is undone


def test_a_timing_change_or_a_re_enable_restarts_decisions_at_the_change(
    database_url: str,
) -> None:
    for schedule_id in ("cron", "zone", "enable"):
        add_planned_schedule(
            database_url,
            schedule_id,
            "0 9 * * *",
            decided_through=db_now(database_url) - 3 * SECOND,
        )
    keeperhub_write(
        database_url, "UPDATE workflow_schedules SET enabled = false WHERE id = 'enable'"
    )
    disabled = schedule_row(database_url, "enable")
    assert disabled["plan_key"] is not None  # a disable alone needs no plan: it is not claimed

    changed_at = db_now(database_url)
    keeperhub_write(
        database_url,
        "UPDATE workflow_schedules SET cron_expression = '0 10 * * *' WHERE id = 'cron'",
    )
    keeperhub_write(
        database_url, "UPDATE workflow_schedules SET timezone = 'Asia/Tokyo' WHERE id = 'zone'"
    )
    keeperhub_write(
        database_url, "UPDATE workflow_schedules SET enabled = true WHERE id = 'enable'"
    )
    for schedule_id in ("cron", "zone", "enable"):
        row = schedule_row(database_url, schedule_id)
        assert row["plan_key"] is None, schedule_id
        assert utc(row["decided_through"]) >= changed_at, schedule_id
        assert utc(row["next_run_at"]) == utc(row["decided_through"]), schedule_id


def test_our_own_writes_pass_the_trigger_untouched(database_url: str) -> None:
    add_planned_schedule(database_url, "s", "* * * * *")
    with connect(database_url, as_scheduler=True) as ours:
        ours.execute("UPDATE workflow_schedules SET next_run_at = '2099-01-01T00:00:00Z'")
    assert schedule_row(database_url, "s")["next_run_at"] == datetime(2099, 1, 1, tzinfo=UTC)
    assert schedule_row(database_url, "s")["plan_key"] is not None


def test_the_notify_trigger_wakes_dispatchers_only_for_earlier_work(database_url: str) -> None:
    add_planned_schedule(database_url, "s", YEARLY)
    add_workflow(database_url, "wf-k")
    with listening(database_url) as listener:
        keeperhub_write(
            database_url,
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression)"
            " VALUES ('k', 'wf-k', %s)",
            YEARLY,
        )
        assert notifications(listener) == 1  # a new schedule is due now
        with connect(database_url, as_scheduler=True) as ours:
            ours.execute(
                "UPDATE workflow_schedules SET next_run_at = next_run_at + interval '1 day'"
            )
        assert notifications(listener) == 0  # later than planned: nobody needs waking
        keeperhub_write(
            database_url, "UPDATE workflow_schedules SET enabled = false WHERE id = 's'"
        )
        assert notifications(listener) == 0
        keeperhub_write(database_url, "UPDATE workflow_schedules SET enabled = true WHERE id = 's'")
        assert notifications(listener) == 1


# --- the dispatcher on such rows ------------------------------------------------------------
async def test_an_insert_with_null_next_run_at_is_planned_within_one_tick(
    database_url: str, queue: QueueEndpoint
) -> None:
    add_workflow(database_url, "wf-yearly")
    add_workflow(database_url, "wf-seconds")
    keeperhub_write(
        database_url,
        "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone, next_run_at)"
        " VALUES ('yearly', 'wf-yearly', %s, 'Europe/Berlin', NULL)",
        YEARLY,
    )
    keeperhub_write(
        database_url,
        "INSERT INTO workflow_schedules (id, workflow_id, cron_expression)"
        " VALUES ('seconds', 'wf-seconds', %s)",
        EVERY_SECOND,
    )
    inserted = {
        sid: utc(schedule_row(database_url, sid)["decided_through"])
        for sid in ("yearly", "seconds")
    }
    async with running_dispatcher(database_url, queue) as dispatcher:
        await dispatcher.run_pass()
        yearly = schedule_row(database_url, "yearly")
        assert yearly["plan_key"] == timing_of(yearly).plan_key(0)
        assert utc(yearly["next_run_at"]) == timing_of(yearly).next_after(inserted["yearly"])
        assert runs_of(database_url, "yearly") == []
        await run_for(dispatcher, 2.5)

    seconds = runs_of(database_url, "seconds")
    row = schedule_row(database_url, "seconds")
    assert fired(seconds) == occurrences_between(
        Timing.of(EVERY_SECOND), inserted["seconds"], utc(row["decided_through"])
    )
    assert len(seconds) >= 2
    assert_one_message_per_run(await drain(queue, expect=len(seconds)), seconds)


async def test_a_cron_change_fires_on_the_new_expression_only(
    database_url: str, queue: QueueEndpoint
) -> None:
    """Every second -> every even second, with next_run_at computed by KeeperHub at write time;
    every second -> yearly, with the old expression's next_run_at left in the past."""
    add_planned_schedule(database_url, "to-even", EVERY_SECOND)
    add_planned_schedule(database_url, "to-yearly", EVERY_SECOND)
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 1.5)
        changed_at = db_now(database_url)
        keeperhub_write(
            database_url,
            "UPDATE workflow_schedules SET cron_expression = %s, next_run_at = %s,"
            " updated_at = now() WHERE id = 'to-even'",
            EVERY_EVEN_SECOND,
            Timing.of(EVERY_EVEN_SECOND).next_after(changed_at),
        )
        keeperhub_write(
            database_url,
            "UPDATE workflow_schedules SET cron_expression = %s, updated_at = now()"
            " WHERE id = 'to-yearly'",
            YEARLY,
        )
        await run_for(dispatcher, 4.5)

    to_even = runs_of(database_url, "to-even")
    before = [o for o in fired(to_even) if o <= changed_at]
    after = [o for o in fired(to_even) if o > changed_at]
    row = schedule_row(database_url, "to-even")
    change = utc(row["updated_at"])
    assert after == occurrences_between(
        Timing.of(EVERY_EVEN_SECOND), change, utc(row["decided_through"])
    )
    assert len(after) >= 2
    assert all(o.second % 2 == 0 for o in after)
    assert before  # it did fire every second before the change
    assert skips(to_even) == []

    to_yearly = runs_of(database_url, "to-yearly")
    row = schedule_row(database_url, "to-yearly")
    assert all(
        o <= utc(row["updated_at"]) for o in fired(to_yearly)
    )  # nothing of the old one after
    assert utc(row["next_run_at"]) == next_new_year(changed_at)
    runs = to_even + to_yearly
    assert_one_message_per_run(await drain(queue, expect=len(fired(runs))), runs)


async def test_a_zone_change_replans_next_run_at_in_the_new_zone(
    database_url: str, queue: QueueEndpoint
) -> None:
    add_planned_schedule(database_url, "nine", "0 9 * * *")
    # KeeperHub computes next_run_at itself, here as if the zone were still UTC.
    keeperhub_write(
        database_url,
        "UPDATE workflow_schedules SET timezone = 'Asia/Tokyo', next_run_at = %s WHERE id = 'nine'",
        Timing.of("0 9 * * *").next_after(db_now(database_url)),
    )
    async with running_dispatcher(database_url, queue) as dispatcher:
        await dispatcher.run_pass()
    row = schedule_row(database_url, "nine")
    tokyo_nine = Timing.of("0 9 * * *", "Asia/Tokyo").next_after(utc(row["decided_through"]))
    assert utc(row["next_run_at"]) == tokyo_nine
    assert tokyo_nine is not None
    assert (tokyo_nine.hour, tokyo_nine.minute) == (0, 0)  # 09:00 in Tokyo is 00:00 UTC
    assert runs_of(database_url, "nine") == []


async def test_disabled_by_keeperhub_nothing_fires_and_re_enabled_no_catch_up(
    database_url: str, queue: QueueEndpoint
) -> None:
    add_planned_schedule(database_url, "toggled", EVERY_SECOND)
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 1.2)
        keeperhub_write(database_url, "UPDATE workflow_schedules SET enabled = false")
        disabled_at = db_now(database_url)
        await run_for(dispatcher, 2.5)
        assert all(o <= disabled_at for o in fired(runs_of(database_url, "toggled")))
        keeperhub_write(database_url, "UPDATE workflow_schedules SET enabled = true")
        enabled_at = utc(schedule_row(database_url, "toggled")["decided_through"])
        await run_for(dispatcher, 2.5)

    runs = runs_of(database_url, "toggled")
    row = schedule_row(database_url, "toggled")
    assert skips(runs) == []  # the disabled stretch is neither fired nor caught up
    assert [o for o in fired(runs) if disabled_at < o <= enabled_at] == []
    resumed = [o for o in fired(runs) if o > enabled_at]
    assert resumed == occurrences_between(
        Timing.of(EVERY_SECOND), enabled_at, utc(row["decided_through"])
    )
    assert len(resumed) >= 2
    assert_one_message_per_run(await drain(queue, expect=len(runs)), runs)


async def test_a_next_run_at_rewrite_alone_loses_and_adds_nothing(
    database_url: str, queue: QueueEndpoint
) -> None:
    add_planned_schedule(database_url, "s", EVERY_SECOND)
    start = utc(schedule_row(database_url, "s")["decided_through"])
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 1.5)
        for far in ("2099-01-01T00:00:00Z", "2000-01-01T00:00:00Z"):
            keeperhub_write(database_url, "UPDATE workflow_schedules SET next_run_at = %s", far)
            await run_for(dispatcher, 1.2)
    row = schedule_row(database_url, "s")
    runs = runs_of(database_url, "s")
    assert fired(runs) == occurrences_between(
        Timing.of(EVERY_SECOND), start, utc(row["decided_through"])
    )
    assert utc(row["next_run_at"]) == utc(row["decided_through"]) + SECOND
    assert_one_message_per_run(await drain(queue, expect=len(runs)), runs)


async def test_keeperhub_s_schedule_days_after_a_timing_change_starts_at_the_change(
    database_url: str, queue: QueueEndpoint
) -> None:
    """A cron change while the dispatcher was away: the old expression's backlog is not run."""
    long_ago = db_now(database_url) - timedelta(days=2)
    add_planned_schedule(database_url, "s", "* * * * *", decided_through=long_ago)
    keeperhub_write(database_url, "UPDATE workflow_schedules SET cron_expression = %s", YEARLY)
    async with running_dispatcher(database_url, queue) as dispatcher:
        await dispatcher.run_pass()
    assert runs_of(database_url, "s") == []
    assert utc(schedule_row(database_url, "s")["next_run_at"]) == next_new_year(
        long_ago + timedelta(days=2)
    )
