"""Retention: old finished runs and the oldest beyond the per-schedule count are pruned, in
batches; runs that are not finished are never touched. On PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.dispatcher.loop import Dispatcher
from keeperhub_scheduler.management.models import ScheduleCreate
from keeperhub_scheduler.transport.database import DatabaseTransport
from tests.management.world import add_runs, add_workflow, run_columns, settings_for


async def schedule_of(engine: AsyncEngine) -> tuple[str, str]:
    workflow_id = await add_workflow(engine)
    spec = ScheduleCreate(workflow_id=workflow_id, cron_expression="0 * * * *")
    return (await management.create_schedule(engine, spec)).id, workflow_id


async def test_prune_by_age_and_by_count_leaves_unfinished_runs_alone(
    any_engine: AsyncEngine, any_database_url: str
) -> None:
    now = datetime.now(UTC)
    hours = [now - timedelta(days=1, hours=h) for h in range(8)]
    crowded, crowded_workflow = await schedule_of(any_engine)
    # Eight recent runs: the newest three finished ones stay, and the unfinished ones stay.
    finished = await add_runs(any_engine, crowded, crowded_workflow, hours[:2])
    waiting = await add_runs(
        any_engine, crowded, crowded_workflow, hours[2:4], status="retrying", finished_at=None
    )
    older = await add_runs(
        any_engine, crowded, crowded_workflow, hours[4:], status="failed", error="HTTP 404"
    )
    aged, aged_workflow = await schedule_of(any_engine)
    months_ago = [now - timedelta(days=40, hours=h) for h in range(3)]
    expired = await add_runs(any_engine, aged, aged_workflow, months_ago[:2], status="skipped")
    stuck = await add_runs(
        any_engine, aged, aged_workflow, months_ago[2:], status="pending", finished_at=None
    )
    recent = await add_runs(any_engine, aged, aged_workflow, [now - timedelta(days=10)])

    settings = settings_for(
        any_database_url, scheduler_retention_days=30, scheduler_retention_max_runs=3
    )
    pruned = await management.prune_runs(any_engine, settings, batch=2)

    assert pruned == 2 + 3  # two expired, three beyond the count of three
    crowded_left = {run["id"] for run in await run_columns(any_engine, crowded)}
    assert crowded_left == {*finished, older[0], *waiting}
    aged_left = {run["id"] for run in await run_columns(any_engine, aged)}
    assert aged_left == {*stuck, *recent}
    assert not aged_left & set(expired)
    assert await management.prune_runs(any_engine, settings) == 0


async def test_the_long_running_dispatcher_prunes_on_its_own(
    any_engine: AsyncEngine, any_database_url: str
) -> None:
    schedule_id, workflow_id = await schedule_of(any_engine)
    now = datetime.now(UTC)
    expired = await add_runs(any_engine, schedule_id, workflow_id, [now - timedelta(days=40)])
    kept = await add_runs(any_engine, schedule_id, workflow_id, [now - timedelta(days=1)])
    settings = settings_for(any_database_url, scheduler_retention_every_seconds=0.2)
    dispatcher = Dispatcher(any_engine, DatabaseTransport(any_engine, None), settings)

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    await dispatcher.run_forever(stop)

    left = {run["id"] for run in await run_columns(any_engine, schedule_id)}
    assert set(kept) <= left
    assert not left & set(expired)
