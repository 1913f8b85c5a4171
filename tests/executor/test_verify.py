"""Messages that must never run: each goes to the dead-letter queue with its reason, the main
queue ends empty, and KeeperHub (the stand-in) never hears of it. (The original dispatcher's
messages, without a ``runId``: ``test_legacy``.)"""

from __future__ import annotations

import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.transport.messages import encode, sign
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
)
from tests.support.sqs import queue_counts, receive_all


def run_message(schedule: Schedule, run_id: str) -> RunRef:
    return RunRef(
        run_id=run_id,
        workflow_id=schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=FIRST_OCCURRENCE,
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
