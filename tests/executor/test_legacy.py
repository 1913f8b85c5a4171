"""The original dispatcher's messages (no ``runId``, unsigned), accepted while signatures are not
required: each maps to its schedule's occurrence and shares that occurrence's run with ours; the
schedule row, never the message, decides the workflow; anything else is dead-lettered.

Real PostgreSQL, LocalStack SQS and the HTTP stand-in throughout."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.executor.legacy import latest_at_or_before
from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.messages import LegacyMessage, encode, sign
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.dispatcher.helpers import add_planned_schedule, run_for, running_dispatcher
from tests.executor.conftest import StandIn
from tests.executor.world import (
    SIGNING_KEY,
    Schedule,
    add_runs,
    add_schedule,
    running_executor,
    send_raw,
    wait_for_runs,
    wait_until_settled,
)
from tests.support.sqs import queue_counts, receive_all

LEGACY = {"scheduler_require_signature": False}  # the migration's setting; the key still checks


def this_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def legacy(schedule: Schedule, trigger_time: datetime, workflow_id: str | None = None) -> str:
    message = LegacyMessage(
        workflow_id=workflow_id or schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=trigger_time,
    )
    body, _ = encode(message, None)
    assert "runId" not in json.loads(body)
    return body


async def runs_of(engine: AsyncEngine, schedule_id: str) -> list[Any]:
    async with engine.connect() as connection:
        statement = select(schedule_runs).where(schedule_runs.c.schedule_id == schedule_id)
        return list((await connection.execute(statement)).all())


async def test_a_legacy_message_runs_once_as_the_occurrence_it_was_sent_for(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """The original sends triggerTime = when it ran, seconds after the occurrence: the run is the
    occurrence's, and a second message for it (a redelivery, a later tick) is a duplicate."""
    schedule = await add_schedule(engine)  # * * * * *
    occurrence = this_minute()
    body = legacy(schedule, occurrence + timedelta(seconds=7.25))
    await send_raw(transport, body, {"TriggerType": "schedule"})

    async with running_executor(database_url, queue, standin.url, **LEGACY) as executor:
        await wait_until_settled(executor, queue)
        await send_raw(transport, legacy(schedule, occurrence + timedelta(seconds=31)), {})
        await wait_until_settled(executor, queue)

    [run] = await runs_of(engine, schedule.id)
    assert run.scheduled_for == occurrence
    assert (run.status, run.attempts, run.workflow_id) == ("succeeded", 1, schedule.workflow_id)
    assert [call["executionId"] for call in standin.state.calls] == [run.id]
    assert await queue_counts(queue) == (0, 0)


async def test_a_legacy_message_shares_the_run_our_dispatcher_made(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    occurrence = this_minute()
    [run_id] = await add_runs(engine, schedule, status="enqueued", first=occurrence)
    await send_raw(transport, legacy(schedule, occurrence + timedelta(seconds=4)), {})

    async with running_executor(database_url, queue, standin.url, **LEGACY):
        runs = await wait_for_runs(engine, [run_id])

    assert runs[run_id]["status"] == "succeeded"
    assert [call["executionId"] for call in standin.state.calls] == [run_id]
    assert len(await runs_of(engine, schedule.id)) == 1


async def switch_off(engine: AsyncEngine, schedule: Schedule, what: str) -> None:
    table, key = (workflow_schedules, schedule.id)
    if what == "workflow":
        table, key = (workflows, schedule.workflow_id)
    async with engine.begin() as connection:
        await connection.execute(update(table).where(table.c.id == key).values(enabled=False))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other_workflow", "legacy message names another workflow than its schedule"),
        ("between_occurrences", "legacy message whose triggerTime is no occurrence of its "
                                "schedule (none in the 60 s before it)"),
        ("too_old", "legacy message for an occurrence older than the schedule's catch-up window"),
        ("schedule_off", "legacy message for a disabled schedule"),
        ("workflow_off", "legacy message for a disabled workflow"),
        ("signed", "invalid message: signed message without a runId (never a legacy message)"),
        ("switched_off", "invalid message: message in the original dispatcher's format (no runId) "
                         "and legacy messages are switched off "
                         "(SCHEDULER_ACCEPT_LEGACY_MESSAGES=false)"),
    ],
)  # fmt: skip
async def test_a_legacy_message_that_must_not_run_is_dead_lettered_with_its_reason(
    case: str,
    reason: str,
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    async with engine.begin() as connection:  # hourly, so a minute past is between occurrences
        await connection.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == schedule.id)
            .values(cron_expression="0 * * * *")
        )
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    trigger, workflow_id, attributes, overrides = hour + timedelta(seconds=5), None, {}, LEGACY
    if case == "other_workflow":
        workflow_id = "wf_someone_else"
    elif case == "between_occurrences":
        trigger = hour + timedelta(seconds=61)
    elif case == "too_old":
        trigger = hour - timedelta(days=2) + timedelta(seconds=5)
    elif case in ("schedule_off", "workflow_off"):
        await switch_off(engine, schedule, case.removesuffix("_off"))
    elif case == "switched_off":
        overrides = LEGACY | {"scheduler_accept_legacy_messages": False}
    body = legacy(schedule, trigger, workflow_id)
    if case == "signed":
        attributes = {"Signature": sign(body, SIGNING_KEY)}
    await send_raw(transport, body, attributes)

    async with running_executor(database_url, queue, standin.url, **overrides):
        [dead] = await receive_all(queue, queue.dlq_url or "", expect=1, wait=30)

    assert dead["MessageAttributes"]["DeadLetterReason"]["StringValue"] == reason
    assert dead["Body"] == body
    assert standin.state.calls == []
    assert await runs_of(engine, schedule.id) == []
    assert await queue_counts(queue) == (0, 0)


async def test_a_legacy_message_for_a_schedule_that_does_not_exist_is_dropped(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    gone = Schedule("sched_gone", "wf_gone")
    await send_raw(transport, legacy(gone, this_minute()), {})

    async with running_executor(database_url, queue, standin.url, **LEGACY) as executor:
        await wait_until_settled(executor, queue)

    assert standin.state.calls == []
    assert await queue_counts(queue) == (0, 0)


# --- the original dispatcher beside ours ------------------------------------------------------
EVERY_FIVE_SECONDS = "*/5 * * * * *"


async def original_dispatcher(
    transport: SqsTransport,
    schedules: list[Schedule],
    stop: asyncio.Event,
    sent: list[tuple[str, datetime]],
) -> None:
    """The original's algorithm at a faster tick: each tick, every schedule whose next_run_at has
    come gets one unsigned message with triggerTime = the moment it ran (here 0.5-3.5 s after the
    occurrence, its CronJob's start-up and query), and next_run_at moves to the next occurrence
    after that moment. (It keeps next_run_at to itself: the column is ours now.)"""
    timing = Timing.of(EVERY_FIVE_SECONDS)
    now = datetime.now(UTC)
    next_run = {schedule.id: timing.next_after(now) for schedule in schedules}
    rng = random.Random(18)
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        now = datetime.now(UTC)
        for schedule in schedules:
            due = next_run[schedule.id]
            if due is None or due > now:
                continue
            await send_raw(transport, legacy(schedule, now), {"TriggerType": "schedule"})
            sent.append((schedule.id, now))
            next_run[schedule.id] = timing.next_after(now)


async def test_the_original_dispatcher_beside_ours_runs_every_occurrence_once(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """A migration: both dispatchers announce the same schedules' occurrences, ours signed with
    run ids, the original's unsigned with triggerTime seconds late. Every occurrence is one run,
    called once."""
    schedules = [Schedule(f"sched_mig{index}", f"wf-sched_mig{index}") for index in range(3)]
    for schedule in schedules:
        add_planned_schedule(database_url, schedule.id, EVERY_FIVE_SECONDS)
    sent: list[tuple[str, datetime]] = []
    stop = asyncio.Event()
    async with (
        running_executor(database_url, queue, standin.url, **LEGACY) as executor,
        running_dispatcher(database_url, queue) as ours,
    ):
        original = asyncio.create_task(original_dispatcher(transport, schedules, stop, sent))
        await run_for(ours, 17)
        stop.set()
        await original
        await wait_until_settled(executor, queue, timeout=60)

    timing = Timing.of(EVERY_FIVE_SECONDS)
    announced = {(sid, latest_at_or_before(timing, at)) for sid, at in sent}
    runs = [run for schedule in schedules for run in await runs_of(engine, schedule.id)]
    occurrences = Counter((run.schedule_id, run.scheduled_for) for run in runs)
    calls = Counter(call["executionId"] for call in standin.state.calls)
    assert len(sent) >= 6  # the original announced at least two occurrences of each
    assert announced <= set(occurrences)  # each legacy message found its occurrence's run
    assert max(occurrences.values()) == 1  # one run per occurrence
    assert {run.status for run in runs} == {"succeeded"}
    assert calls == Counter({run.id: 1 for run in runs})  # each called once, nothing else
    # Every run is an occurrence's (not a triggerTime's), so one call per occurrence.
    assert all(latest_at_or_before(timing, run.scheduled_for) == run.scheduled_for for run in runs)
    assert await queue_counts(queue) == (0, 0)
    assert await receive_all(queue, queue.dlq_url or "", expect=0, wait=1) == []
