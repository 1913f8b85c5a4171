"""Poison messages, forged and sent to LocalStack: each ends in the dead-letter queue with its
reason on its first receive (never a traceback per receive until the redrive takes it), in a
copy SQS accepts; and a message that cannot be settled is dead-lettered by what we know."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.transport.messages import sign
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport, open_client
from tests.executor.conftest import StandIn
from tests.executor.world import (
    SIGNING_KEY,
    add_runs,
    add_schedule,
    running_executor,
    send_raw,
)
from tests.support.sqs import queue_counts, receive_all

BEFORE_YEAR_ONE = "0001-01-01T00:00:00+14:00"  # parses, but is before datetime.min in UTC


async def send_forged(queue: QueueEndpoint, body: str, attributes: dict[str, Any]) -> None:
    """A message with attributes of any type, as anyone with send rights can write one."""
    async with AsyncExitStack() as stack:
        client = await open_client(queue, stack, pool=1)
        await client.send_message(
            QueueUrl=queue.queue_url, MessageBody=body, MessageAttributes=attributes
        )


async def dead_lettered(
    database_url: str, queue: QueueEndpoint, standin: StandIn, **overrides: Any
) -> dict[str, Any]:
    """Run an executor until the one message reaches the DLQ; the DLQ copy."""
    async with running_executor(database_url, queue, standin.url, **overrides):
        [dead] = await receive_all(queue, queue.dlq_url or "", expect=1, wait=30)
    assert standin.state.calls == []
    assert await queue_counts(queue) == (0, 0)
    return dead


def reason_of(dead: dict[str, Any]) -> str:
    return str(dead["MessageAttributes"]["DeadLetterReason"]["StringValue"])


@pytest.mark.parametrize("signed", [True, False], ids=["with-run-id", "legacy"])
async def test_a_trigger_time_before_year_one_is_dead_lettered_with_its_reason(
    signed: bool,
    database_url: str,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    payload = {"workflowId": "wf_x", "scheduleId": "sched_x", "triggerTime": BEFORE_YEAR_ONE}
    if signed:
        payload["runId"] = "run_x"
    body = json.dumps(payload)
    attributes = {"Signature": sign(body, SIGNING_KEY)} if signed else {}
    await send_raw(transport, body, attributes)

    dead = await dead_lettered(database_url, queue, standin, scheduler_require_signature=signed)

    assert reason_of(dead) == (
        f"invalid message: field triggerTime is not an ISO 8601 instant: '{BEFORE_YEAR_ONE}'"
    )
    assert dead["Body"] == body


async def test_a_binary_signature_is_dead_lettered_and_the_copy_says_it_was_dropped(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    body = json.dumps(
        {"workflowId": schedule.workflow_id, "scheduleId": schedule.id,
         "triggerTime": "2026-03-02T09:00:00.000Z", "runId": run_id}
    )  # fmt: skip
    signature = sign(body, SIGNING_KEY).encode()
    await send_forged(
        queue,
        body,
        {
            "Signature": {"DataType": "Binary", "BinaryValue": signature},
            "Attempt": {"DataType": "Number", "StringValue": "3"},
            "TriggerType": {"DataType": "String", "StringValue": "schedule"},
        },
    )

    dead = await dead_lettered(database_url, queue, standin)

    assert reason_of(dead) == "invalid message: attributes not of type String: Attempt, Signature"
    attributes = dead["MessageAttributes"]
    assert attributes["DroppedAttributes"]["StringValue"] == "Attempt, Signature"
    assert attributes["TriggerType"]["StringValue"] == "schedule"
    assert dead["Body"] == body


async def test_the_dead_letter_copy_of_a_message_at_sqs_limits_fits_them(
    database_url: str,
    queue: QueueEndpoint,
    standin: StandIn,
) -> None:
    """Ten attributes and a body near 256 KiB: the copy adds the reason and the message id, so
    it keeps what fits, names what it dropped and cuts the body, and SQS takes it."""
    attributes = {
        f"Extra{index}": {"DataType": "String", "StringValue": "x" * 100} for index in range(9)
    }
    attributes["TriggerType"] = {"DataType": "String", "StringValue": "schedule"}
    # As large as SQS takes: it counts each attribute's name, data type and value.
    size = 256 * 1024 - sum(len(name) + 6 + len(a["StringValue"]) for name, a in attributes.items())
    body = "a" * size
    await send_forged(queue, body, attributes)

    dead = await dead_lettered(database_url, queue, standin, scheduler_require_signature=False)

    copied = dead["MessageAttributes"]
    assert reason_of(dead) == "invalid message: body larger than 65536 bytes"
    assert len(copied) <= 10
    assert copied["TriggerType"]["StringValue"] == "schedule"
    dropped = copied["DroppedAttributes"]["StringValue"].split(", ")
    assert len(dropped) + sum(name.startswith("Extra") for name in copied) == 9
    assert copied["BodyTruncated"]["StringValue"] == f"from {size} bytes"
    assert body.startswith(dead["Body"])
    assert len(dead["Body"]) > 200_000


async def test_a_message_that_cannot_be_settled_is_dead_lettered_by_what_we_know(
    empty_database_url: str,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """The executor's database has no tables (a real fault on every receive): at the receive
    the queue would redrive it without a word, the executor dead-letters it with the error."""
    body = json.dumps(
        {"workflowId": "wf_x", "scheduleId": "sched_x", "runId": "run_x",
         "triggerTime": "2026-03-02T09:00:00.000Z"}
    )  # fmt: skip
    await send_raw(transport, body, {"Signature": sign(body, SIGNING_KEY)})

    dead = await dead_lettered(
        empty_database_url,
        queue,
        standin,
        scheduler_max_receive_count=2,
        scheduler_max_attempts=2,
        scheduler_visibility_timeout_seconds=5,
    )

    assert reason_of(dead).startswith("not settled after 2 receives: ProgrammingError")
    assert dead["Body"] == body
