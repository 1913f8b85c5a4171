"""Heartbeats in the database: each loop's row, what it says, and who writes it when."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.heartbeats import recent_beats
from keeperhub_scheduler.db.tables import scheduler_heartbeats
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.management.models import ScheduleCreate
from keeperhub_scheduler.telemetry.beats import BeatWriter
from keeperhub_scheduler.telemetry.health import Heartbeat
from keeperhub_scheduler.transport.database import DatabaseTransport
from tests.management.world import add_workflow, settings_for


async def beats(engine: AsyncEngine) -> list:  # type: ignore[type-arg]
    async with engine.connect() as connection:
        now = await database_now(connection)
        return await recent_beats(connection, now - timedelta(days=30))


async def test_a_writer_keeps_one_row_with_the_loops_last_turn_and_work(
    any_engine: AsyncEngine,
) -> None:
    heartbeat = Heartbeat(max_silence=30)
    writer = BeatWriter(any_engine, "executor", heartbeat)
    await writer.write()
    [first] = await beats(any_engine)
    assert (first.role, first.process_id, first.max_silence_seconds) == (
        "executor", writer.process_id, 30
    )  # fmt: skip
    assert first.last_work_at is None

    heartbeat.worked()
    await writer.write()
    [second] = await beats(any_engine)
    assert second.process_id == first.process_id
    assert second.started_at == first.started_at
    assert second.beat_at >= first.beat_at
    assert second.last_work_at is not None
    assert abs((second.beat_at - second.last_work_at).total_seconds()) < 1


async def test_a_writer_forgets_processes_gone_for_a_week(any_engine: AsyncEngine) -> None:
    async with any_engine.begin() as connection:
        now = await database_now(connection)
        old = now - timedelta(days=8)
        await connection.execute(
            insert(scheduler_heartbeats).values(
                process_id="executor@gone:1:abc", role="executor", host="gone", pid=1,
                started_at=old, beat_at=old, max_silence_seconds=60,
            )
        )  # fmt: skip
    await BeatWriter(any_engine, "dispatcher", Heartbeat(30)).write()
    async with any_engine.connect() as connection:
        hosts = (await connection.execute(select(scheduler_heartbeats.c.host))).scalars().all()
    assert len(hosts) == 1
    assert "gone" not in hosts


async def test_the_dispatcher_marks_work_only_when_it_claimed_something(
    any_engine: AsyncEngine, any_database_url: str
) -> None:
    dispatcher = Dispatcher(
        any_engine, DatabaseTransport(any_engine, None), settings_for(any_database_url)
    )
    await dispatcher.run_pass()
    assert dispatcher.heartbeat.last_work is None  # nothing due: a turn, not work

    workflow_id = await add_workflow(any_engine)
    await management.create_schedule(
        any_engine, ScheduleCreate(workflow_id=workflow_id, interval_seconds=1)
    )
    for _ in range(30):
        result = await dispatcher.run_pass()
        if result.schedules:
            break
        await asyncio.sleep(0.1)
    assert dispatcher.heartbeat.last_work is not None
