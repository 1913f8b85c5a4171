"""Management actions through the real dispatcher and executor: a pause with ``until`` ends by
itself, and triggered and backfilled runs are carried out once each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.engine import create_engine, database_now
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.management.models import (
    BackfillRequest,
    PauseRequest,
    ScheduleCreate,
    TriggerRequest,
)
from keeperhub_scheduler.processes import build_executor
from keeperhub_scheduler.transport.base import Transport
from keeperhub_scheduler.transport.database import DatabaseTransport
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.management.world import (
    add_workflow,
    run_columns,
    schedule_columns,
    settings_for,
)
from tests.support.sqlite import sqlite_url
from tests.support.standin import running_standin


async def database_time(engine: AsyncEngine) -> datetime:
    async with engine.connect() as connection:
        return await database_now(connection)


@pytest.mark.waits  # for the pause to run out
async def test_a_pause_with_until_ends_by_itself(
    any_engine: AsyncEngine, any_database_url: str
) -> None:
    workflow_id = await add_workflow(any_engine)
    spec = ScheduleCreate(workflow_id=workflow_id, interval_seconds=1)
    schedule = await management.create_schedule(any_engine, spec)
    until = (await database_time(any_engine)) + timedelta(seconds=2.5)
    paused = await management.pause_schedule(
        any_engine, schedule.id, PauseRequest(note="deploy", until=until)
    )
    assert paused.paused is True
    settings = settings_for(any_database_url)
    dispatcher = Dispatcher(any_engine, DatabaseTransport(any_engine, None), settings)
    # Passes across the until instant, as the long-running dispatcher makes them.
    while await database_time(any_engine) < until + timedelta(seconds=1.5):
        await dispatcher.run_pass()
        await asyncio.sleep(0.2)

    row = await schedule_columns(any_engine, schedule.id)
    assert (row["paused_at"], row["paused_until"], row["paused_note"]) == (None, None, None)
    assert (await management.get_schedule(any_engine, schedule.id)).paused is False
    runs = await run_columns(any_engine, schedule.id)
    skipped = [run for run in runs if run["status"] == "skipped"]
    fired = [run for run in runs if run["status"] in ("pending", "enqueued")]
    assert skipped
    assert {run["skip_reason"] for run in skipped} == {"paused"}
    assert all(run["scheduled_for"] < until for run in skipped)
    assert fired
    assert all(run["scheduled_for"] >= until for run in fired)


@asynccontextmanager
async def executing(
    settings: Settings, engine: AsyncEngine, transport: Transport
) -> AsyncIterator[None]:
    executor, keeperhub = build_executor(settings, engine, transport)
    stop = asyncio.Event()
    task = asyncio.create_task(executor.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await keeperhub.close()


async def wait_finished(engine: AsyncEngine, schedule_id: str, count: int) -> list[dict[str, Any]]:
    for _ in range(600):
        runs = await run_columns(engine, schedule_id)
        if len(runs) == count and all(run["finished_at"] for run in runs):
            return runs
        await asyncio.sleep(0.1)
    raise AssertionError(f"runs did not finish: {[run['status'] for run in runs]}")


async def test_trigger_and_backfill_are_executed_once_each_through_sqs(
    engine: AsyncEngine, database_url: str, queue: QueueEndpoint
) -> None:
    """PostgreSQL and a LocalStack queue: production's path."""
    overrides = {
        "sqs_queue_url": queue.queue_url,
        "scheduler_dlq_url": queue.dlq_url,
        "aws_endpoint_url": queue.endpoint_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    await executed_once_each(engine, database_url, "sqs", overrides)


async def test_trigger_and_backfill_are_executed_once_each_on_sqlite(tmp_path: Path) -> None:
    """SQLite and the database transport: the embedded mode's path."""
    url = sqlite_url(tmp_path)
    engine = create_engine(url)
    try:
        await executed_once_each(engine, url, "database", {})
    finally:
        await engine.dispose()


async def executed_once_each(
    engine: AsyncEngine, url: str, transport_kind: str, overrides: dict[str, Any]
) -> None:
    overrides = overrides | {
        "scheduler_service_api_key": "service-key",
        "scheduler_receive_wait_seconds": 1,
    }
    workflow_id = await add_workflow(engine)
    spec = ScheduleCreate(workflow_id=workflow_id, cron_expression="0 * * * *")
    schedule = await management.create_schedule(engine, spec)
    # Paused: the manual and backfill runs were asked for, so they run all the same.
    await management.pause_schedule(engine, schedule.id, PauseRequest(note="investigating"))
    manual = await management.trigger_schedule(
        engine, schedule.id, TriggerRequest(reason="rerun after fix")
    )
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start, end = hour - timedelta(hours=3), hour - timedelta(hours=1)
    backfill = await management.backfill_schedule(
        engine, schedule.id, BackfillRequest(start=start, end=end)
    )
    assert backfill.created == 3

    async with running_standin() as (standin_url, state):
        settings = settings_for(url, keeperhub_url=standin_url, **overrides)
        transport: Transport
        if transport_kind == "sqs":
            transport = await SqsTransport(QueueEndpoint.from_settings(settings)).start()
        else:
            transport = DatabaseTransport(engine, None)
        try:
            dispatcher = Dispatcher(engine, transport, settings)
            async with executing(settings, engine, transport):
                await dispatcher.run_pass()
                runs = await wait_finished(engine, schedule.id, 4)
                # Another pass and a moment more: nothing is sent or called again.
                await dispatcher.run_pass()
                await asyncio.sleep(1.5)
        finally:
            await transport.close()

    assert {(run["kind"], run["status"]) for run in runs} == {
        ("manual", "succeeded"),
        ("backfill", "succeeded"),
    }
    assert [run["kind"] for run in runs].count("backfill") == 3
    assert sorted(run["scheduled_for"] for run in runs if run["kind"] == "backfill") == [
        start,
        start + timedelta(hours=1),
        end,
    ]
    assert sorted(state.counts.values()) == [1, 1, 1, 1]
    assert set(state.counts) == {run["id"] for run in runs}
    manual_call = next(call for call in state.calls if call["executionId"] == manual.id)
    assert manual_call["idempotencyKey"] == manual.id
    assert manual_call["workflowId"] == workflow_id
    assert all(run["attempts"] == 1 for run in await run_columns(engine, schedule.id))
