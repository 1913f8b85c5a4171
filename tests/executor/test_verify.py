"""Messages that must never run: each goes to the dead-letter queue with its reason, the main
queue ends empty, and KeeperHub (the stand-in) never hears of it. And the original dispatcher's
messages (no ``runId``), which are accepted and mapped to the run of (scheduleId, triggerTime)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.transport.messages import LegacyMessage, encode, sign
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.conftest import StandIn
from tests.executor.world import (
    FIRST_OCCURRENCE,
    SIGNING_KEY,
    Schedule,
    add_runs,
    add_schedule,
    run_row,
    running_executor,
    send_raw,
    wait_for_runs,
    wait_until_settled,
)
from tests.support.sqs import queue_counts, receive_all


def run_message(schedule: Schedule, run_id: str) -> RunRef:
    return RunRef(
        run_id=run_id,
        workflow_id=schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=FIRST_OCCURRENCE,
    )


def legacy_message(workflow_id: str, schedule_id: str) -> LegacyMessage:
    return LegacyMessage(
        workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=FIRST_OCCURRENCE
    )


def signed(body: str) -> dict[str, str]:
    return {"TriggerType": "schedule", "Signature": sign(body, SIGNING_KEY)}


def malformed_json(_: Schedule, __: str) -> tuple[str, dict[str, str]]:
    body = '{"workflowId": "wf", "scheduleId": '
    return body, signed(body)


def wrong_schema(schedule: Schedule, run_id: str) -> tuple[str, dict[str, str]]:
    body = json.dumps({"workflowId": schedule.workflow_id, "runId": run_id, "triggerTime": 5})
    return body, signed(body)


def forged_signature(schedule: Schedule, run_id: str) -> tuple[str, dict[str, str]]:
    body, attributes = encode(run_message(schedule, run_id), b"someone-else's-key")
    return body, attributes


def tampered_body(schedule: Schedule, run_id: str) -> tuple[str, dict[str, str]]:
    body, attributes = encode(run_message(schedule, run_id), SIGNING_KEY)
    return body.replace("09:00:00", "09:01:00"), attributes


def unsigned(schedule: Schedule, run_id: str) -> tuple[str, dict[str, str]]:
    body, attributes = encode(run_message(schedule, run_id), None)
    return body, attributes


def other_workflow(schedule: Schedule, run_id: str) -> tuple[str, dict[str, str]]:
    message = RunRef(
        run_id=run_id,
        workflow_id="wf_someone_else",
        schedule_id=schedule.id,
        scheduled_for=FIRST_OCCURRENCE,
    )
    return encode(message, SIGNING_KEY)


FORGED = "invalid message: signature does not match the body (forged or corrupted)"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (malformed_json, "invalid message: malformed JSON: Expecting value"),
        (wrong_schema, "invalid message: field scheduleId is missing or not a string"),
        (forged_signature, FORGED),
        (tampered_body, FORGED),
        (unsigned, "invalid message: unsigned message (a signature is required)"),
        (other_workflow, "message does not match its run (workflowId or scheduleId)"),
    ],
)  # fmt: skip
async def test_a_message_that_must_not_run_is_dead_lettered_with_its_reason(
    build: object,
    reason: str,
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    body, attributes = build(schedule, run_id)  # type: ignore[operator]
    await send_raw(transport, body, attributes)

    async with running_executor(database_url, queue, standin.url):
        [dead] = await receive_all(queue, queue.dlq_url or "", expect=1, wait=30)

    assert dead["MessageAttributes"]["DeadLetterReason"]["StringValue"] == reason
    assert dead["Body"] == body
    assert standin.state.calls == []
    assert await queue_counts(queue) == (0, 0)
    # The run the message named is untouched: its own, genuine message can still run it.
    run = await run_row(engine, run_id)
    assert (run["status"], run["attempts"]) == ("enqueued", 0)


async def test_an_original_format_message_runs_once_as_the_run_of_its_occurrence(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """The original dispatcher sent no runId and no signature: accepted while signatures are not
    required (a migration), mapped to (scheduleId, triggerTime), and its redelivery is a no-op."""
    schedule = await add_schedule(engine)
    legacy = legacy_message(schedule.workflow_id, schedule.id)
    body, attributes = encode(legacy, None)
    assert "runId" not in json.loads(body)
    await send_raw(transport, body, attributes)

    async with running_executor(
        database_url, queue, standin.url, scheduler_require_signature=False
    ) as executor:
        await wait_until_settled(executor, queue)
        assert len(standin.state.calls) == 1
        await send_raw(transport, body, attributes)  # the same occurrence, delivered again
        await wait_until_settled(executor, queue)

    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(schedule_runs).where(schedule_runs.c.schedule_id == schedule.id)
            )
        ).all()
    [run] = rows
    assert run.scheduled_for == FIRST_OCCURRENCE
    assert (run.status, run.attempts) == ("succeeded", 1)
    assert [call["executionId"] for call in standin.state.calls] == [run.id]
    assert await queue_counts(queue) == (0, 0)


async def test_an_original_format_message_maps_to_the_run_the_dispatcher_already_made(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """During a migration both dispatchers may announce one occurrence: it runs once."""
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    await add_runs(engine, schedule, status="enqueued", first=FIRST_OCCURRENCE + timedelta(hours=1))
    body, attributes = encode(legacy_message(schedule.workflow_id, schedule.id), None)
    await send_raw(transport, body, attributes)

    async with running_executor(
        database_url, queue, standin.url, scheduler_require_signature=False
    ):
        runs = await wait_for_runs(engine, [run_id])

    assert runs[run_id]["status"] == "succeeded"
    assert [call["executionId"] for call in standin.state.calls] == [run_id]
    async with engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(schedule_runs))
    assert count == 2


async def test_an_original_format_message_for_a_deleted_schedule_is_dropped(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    body, attributes = encode(legacy_message("wf_gone", "sched_gone"), None)
    await send_raw(transport, body, attributes)

    async with running_executor(
        database_url, queue, standin.url, scheduler_require_signature=False
    ) as executor:
        await wait_until_settled(executor, queue)

    assert standin.state.calls == []
    assert await queue_counts(queue) == (0, 0)
