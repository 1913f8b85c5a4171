"""A server whose default time zone is not UTC: the claim still reads, decides and sends UTC.

Our sessions set ``TimeZone`` to UTC, so the instants the driver hands back are ``datetime.UTC``
ones; the claim reads the due rows straight from the driver, with nothing else converting them.
Pacific/Chatham (+13:45 in summer) makes any instant read in the server's zone stand out.
"""

from __future__ import annotations

from datetime import UTC

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import create_engine, database_now
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    MINUTE,
    add_planned_schedule,
    assert_one_message_per_run,
    connect,
    db_now,
    drain,
    floor_minute,
    running_dispatcher,
    runs_of,
    utc,
)

ZONE = "Pacific/Chatham"


def set_server_zone(url: str) -> None:
    with connect(url) as connection:
        name = connection.execute("SELECT current_database() AS name").fetchone()
        assert name is not None
        connection.execute(f"ALTER DATABASE \"{name['name']}\" SET timezone = '{ZONE}'")
    # A new plain session (KeeperHub's, psql's) now reads instants in that zone.
    with connect(url) as connection:
        assert connection.execute("SHOW timezone").fetchone() == {"TimeZone": ZONE}


async def test_the_due_rows_the_claim_reads_are_utc_instants(database_url: str) -> None:
    set_server_zone(database_url)
    paused_until = db_now(database_url) + 60 * MINUTE
    add_planned_schedule(
        database_url,
        "chatham",
        decided_through=db_now(database_url) - 2 * MINUTE,
        paused_at=db_now(database_url) - 5 * MINUTE,
        paused_until=paused_until,
    )
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            [row] = await store_for(engine).lock_due(connection, await database_now(connection), 10)
            await connection.rollback()
    finally:
        await engine.dispose()
    instants = [row.paused_at, row.paused_until, row.decided_through, row.updated_at]
    assert all(instant is not None and instant.tzinfo is UTC for instant in instants), instants
    assert row.paused_until == paused_until


async def test_a_pass_fires_the_utc_minute_once_on_a_server_in_another_zone(
    database_url: str, queue: QueueEndpoint
) -> None:
    set_server_zone(database_url)
    now = db_now(database_url)
    add_planned_schedule(database_url, "chatham", decided_through=now - 2 * MINUTE)
    async with running_dispatcher(database_url, queue) as dispatcher:
        result = await dispatcher.run_pass()
    runs = runs_of(database_url, "chatham")
    # The two minutes since the decision, as UTC instants: each fired or skipped, once.
    minutes = [floor_minute(now) - MINUTE, floor_minute(now)]
    assert sorted(utc(run["scheduled_for"]) for run in runs) == minutes
    fired = [run for run in runs if run["status"] == "enqueued"]
    assert result.relayed == len(fired) >= 1
    received = await drain(queue, expect=len(fired))
    assert_one_message_per_run(received, runs)
    expected = {utc(run["scheduled_for"]).strftime("%Y-%m-%dT%H:%M:00.000Z") for run in fired}
    assert {item.body["triggerTime"] for item in received} == expected
