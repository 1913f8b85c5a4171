"""The schedule service (the spec's lib/schedule-service) against real PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import workflow_schedules, workflows
from keeperhub_scheduler.errors import InvalidScheduleError, NotFoundError
from keeperhub_scheduler.management.service import (
    ScheduleConfig,
    ScheduleService,
    compute_next_run_time,
    extract_schedule_config,
    validate_cron_expression,
    validate_timezone,
)


def trigger_node(cron: str | None, zone: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"triggerType": "Schedule"}
    if cron is not None:
        config["scheduleCron"] = cron
    if zone is not None:
        config["scheduleTimezone"] = zone
    return {"id": "n1", "type": "trigger", "data": {"type": "trigger", "config": config}}


ACTION = {"id": "n2", "data": {"type": "action", "config": {"actionType": "HTTP"}}}


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        (
            [trigger_node("0 9 * * 1-5", "Europe/Berlin"), ACTION],
            ScheduleConfig("0 9 * * 1-5", "Europe/Berlin"),
        ),
        ([trigger_node("*/5 * * * *")], ScheduleConfig("*/5 * * * *", "UTC")),
        ([trigger_node(" 0 3 * * * ", "")], ScheduleConfig("0 3 * * *", "UTC")),
        ([trigger_node(None)], None),
        ([{"data": {"type": "trigger", "config": {"triggerType": "Webhook"}}}], None),
        ([ACTION], None),
        ([], None),
        ("not a list", None),
        ([None, 3, {"data": "x"}], None),
    ],
)
def test_extract_schedule_config_reads_keeperhubs_trigger_node(
    nodes: Any, expected: ScheduleConfig | None
) -> None:
    assert extract_schedule_config(nodes) == expected


def test_validation_answers_in_keeperhubs_shape() -> None:
    assert validate_cron_expression("0 9 * * 1-5").valid
    bad = validate_cron_expression("60 * * * *")
    assert not bad.valid
    assert bad.error == "minute 60 is out of range 0-59"
    assert bad.field == "minute"
    assert validate_timezone("Europe/Berlin").valid
    assert validate_timezone("Mars/Base").error == "unknown time zone 'Mars/Base'"


def test_compute_next_run_time() -> None:
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    # 02:30 does not exist in Berlin on 2026-03-29: a fixed-time job fires when the gap ends.
    assert compute_next_run_time("30 2 * * *", "Europe/Berlin", after) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    assert compute_next_run_time("bogus", "UTC", after) is None


@pytest.fixture
async def engine(any_engine: AsyncEngine) -> AsyncEngine:
    """PostgreSQL's or SQLite's, with one workflow and one schedule."""
    async with any_engine.begin() as connection:
        await connection.execute(
            insert(workflows),
            [
                {"id": "wf1", "name": "one", "enabled": True},
                {"id": "wf2", "name": "two", "enabled": True},
            ],
        )
    return any_engine


async def schedule_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(workflow_schedules))).all())


async def test_sync_creates_updates_leaves_and_deletes(engine: AsyncEngine) -> None:
    service = ScheduleService(engine)
    created = await service.sync_workflow_schedule("wf1", [trigger_node("0 9 * * *", "Asia/Tokyo")])
    assert created.action == "created"
    assert created.schedule is not None
    first_id = created.schedule["id"]
    assert created.schedule["next_run_at"] > datetime.now(UTC)
    assert created.schedule["plan_key"] is not None

    same = await service.sync_workflow_schedule("wf1", [trigger_node("0 9 * * *", "Asia/Tokyo")])
    assert same.action == "unchanged"
    assert same.schedule is not None
    assert same.schedule["next_run_at"] == created.schedule["next_run_at"]

    updated = await service.sync_workflow_schedule("wf1", [trigger_node("*/10 * * * *")])
    assert updated.action == "updated"
    assert updated.schedule is not None
    assert updated.schedule["id"] == first_id  # the same schedule, re-planned
    assert updated.schedule["cron_expression"] == "*/10 * * * *"
    next_run = updated.schedule["next_run_at"]
    assert next_run.minute % 10 == 0
    assert next_run - datetime.now(UTC) <= timedelta(minutes=10)

    removed = await service.sync_workflow_schedule("wf1", [ACTION])
    assert removed.action == "deleted"
    assert await schedule_rows(engine) == []
    assert (await service.sync_workflow_schedule("wf1", [ACTION])).action == "none"


async def test_sync_rejects_what_it_cannot_run(engine: AsyncEngine) -> None:
    service = ScheduleService(engine)
    with pytest.raises(InvalidScheduleError, match="hour 25 is out of range 0-23"):
        await service.sync_workflow_schedule("wf1", [trigger_node("0 25 * * *")])
    with pytest.raises(InvalidScheduleError, match="unknown time zone 'Mars/Base'"):
        await service.sync_workflow_schedule("wf1", [trigger_node("0 1 * * *", "Mars/Base")])
    with pytest.raises(NotFoundError):
        await service.sync_workflow_schedule("missing", [trigger_node("0 1 * * *")])
    assert await schedule_rows(engine) == []


async def test_concurrent_syncs_make_one_schedule(engine: AsyncEngine) -> None:
    service = ScheduleService(engine)
    results = await asyncio.gather(
        *(service.sync_workflow_schedule("wf2", [trigger_node(f"{m} * * * *")]) for m in range(8))
    )
    rows = await schedule_rows(engine)
    assert len(rows) == 1
    assert {r.action for r in results} <= {"created", "updated", "unchanged"}
    assert sum(r.action == "created" for r in results) == 1


async def test_enabling_replans_and_disabling_clears_next_run(engine: AsyncEngine) -> None:
    service = ScheduleService(engine)
    await service.sync_workflow_schedule("wf1", [trigger_node("* * * * *")])
    disabled = await service.set_schedule_enabled("wf1", False)
    assert disabled["enabled"] is False
    assert disabled["next_run_at"] is None
    enabled = await service.set_schedule_enabled("wf1", True)
    now = datetime.now(UTC)
    assert enabled["enabled"] is True
    assert now < enabled["next_run_at"] <= now + timedelta(minutes=1)
    assert abs((enabled["decided_through"] - now).total_seconds()) < 5
    with pytest.raises(NotFoundError):
        await service.set_schedule_enabled("nope", True)
    assert (await service.get_workflow_schedule("wf1")) is not None
    assert (await service.get_workflow_schedule("wf2")) is None
