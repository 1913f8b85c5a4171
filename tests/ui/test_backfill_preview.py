"""``management.preview_backfill``: what a backfill would create, without creating it, and the
same occurrences and checks as the backfill itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.management.models import BackfillRequest, ScheduleCreate
from tests.management.test_lifecycle import database_time
from tests.management.world import add_runs, add_workflow, run_columns


async def test_the_preview_lists_every_occurrence_and_the_backfill_creates_what_it_said(
    any_engine: AsyncEngine,
) -> None:
    workflow_id = await add_workflow(any_engine)
    schedule = await management.create_schedule(
        any_engine, ScheduleCreate(workflow_id=workflow_id, cron_expression="0 * * * *")
    )
    now = await database_time(any_engine)
    top = now.replace(minute=0, second=0, microsecond=0)
    hours = [top - timedelta(hours=n) for n in (5, 4, 3, 2, 1)]
    kept = await add_runs(any_engine, schedule.id, workflow_id, [hours[1], hours[3]])
    request = BackfillRequest(start=hours[0], end=hours[-1], reason="outage")

    preview = await management.preview_backfill(any_engine, schedule.id, request)

    assert [item.scheduled_for for item in preview.occurrences] == hours
    assert [item.existing_run_id for item in preview.occurrences] == [
        None, kept[0], None, kept[1], None
    ]  # fmt: skip
    assert preview.occurrences[1].existing_status == "succeeded"
    assert preview.would_create == 3
    assert len(await run_columns(any_engine, schedule.id)) == 2  # nothing written

    result = await management.backfill_schedule(any_engine, schedule.id, request)
    assert (result.created, result.existing) == (preview.would_create, 2)


async def test_the_preview_refuses_what_the_backfill_refuses(any_engine: AsyncEngine) -> None:
    workflow_id = await add_workflow(any_engine)
    schedule = await management.create_schedule(
        any_engine, ScheduleCreate(workflow_id=workflow_id, interval_seconds=1)
    )
    now = await database_time(any_engine)
    cases = [
        BackfillRequest(start=now - timedelta(hours=1), end=now + timedelta(hours=1)),
        BackfillRequest(start=now - timedelta(minutes=1), end=now - timedelta(hours=1)),
        BackfillRequest(start=now - timedelta(hours=2), end=now - timedelta(hours=1)),  # 3,601
    ]
    for request in cases:
        with pytest.raises(InvalidScheduleError) as previewed:
            await management.preview_backfill(any_engine, schedule.id, request)
        with pytest.raises(InvalidScheduleError) as done:
            await management.backfill_schedule(any_engine, schedule.id, request)
        assert str(previewed.value) == str(done.value)


async def test_a_schedule_read_with_ten_fires_and_no_runs(any_engine: AsyncEngine) -> None:
    workflow_id = await add_workflow(any_engine)
    schedule = await management.create_schedule(
        any_engine, ScheduleCreate(workflow_id=workflow_id, cron_expression="*/5 * * * *")
    )
    detail = await management.get_schedule(any_engine, schedule.id, fires=10, runs=0)
    assert len(detail.next_fire_times) == 10
    assert detail.recent_runs == []
    default = await management.get_schedule(any_engine, schedule.id)
    assert len(default.next_fire_times) == 5
