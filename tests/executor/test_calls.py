"""One run, one KeeperHub call: the answers KeeperHub can give and what the executor makes of them.

Real PostgreSQL, real LocalStack queues and the stand-in over real HTTP; the executor runs in this
event loop with short long polls and retry delays of a second or two.
"""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.dev.standin import Scripted
from keeperhub_scheduler.transport.messages import format_instant
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.conftest import StandIn
from tests.executor.world import (
    SERVICE_KEY,
    add_runs,
    add_schedule,
    relay,
    run_row,
    running_executor,
    schedule_row,
    wait_for_runs,
)
from tests.support.sqs import queue_counts, receive_all


async def test_a_run_is_called_once_with_the_contract_and_recorded_as_succeeded(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine, run_count="41")
    [run_id] = await add_runs(engine, schedule)
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    run = runs[run_id]
    assert (run["status"], run["http_status"], run["attempts"], run["error"]) == (
        "succeeded",
        200,
        1,
        None,
    )
    [call] = standin.state.calls
    assert call["executionId"] == call["idempotencyKey"] == run_id
    assert call["workflowId"] == schedule.workflow_id
    assert call["serviceKeyPresent"] is True
    assert call["input"] == {
        "triggerType": "schedule",
        "scheduleId": schedule.id,
        "triggerTime": format_instant(run["scheduled_for"]),
    }
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["last_error"], row["run_count"]) == ("success", None, "42")
    assert row["last_run_at"] == run["finished_at"]
    assert await queue_counts(queue) == (0, 0)


async def test_a_500_then_a_200_is_two_calls_of_one_execution_and_succeeds(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin.state.script.extend([Scripted(500, body={"error": "database is down"}), Scripted(200)])
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    run = runs[run_id]
    assert (run["status"], run["http_status"], run["attempts"]) == ("succeeded", 200, 2)
    assert [call["status"] for call in standin.state.calls] == [500, 200]
    assert {call["executionId"] for call in standin.state.calls} == {run_id}
    assert {call["idempotencyKey"] for call in standin.state.calls} == {run_id}
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["last_error"], row["run_count"]) == ("success", None, "1")
    assert await queue_counts(queue) == (0, 0)


async def test_a_404_is_one_call_recorded_as_failed_with_the_body_error_and_not_retried(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin.state.script.append(Scripted(404, body={"error": "workflow not found"}))
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    run = runs[run_id]
    assert (run["status"], run["http_status"], run["attempts"]) == ("failed", 404, 1)
    assert run["error"] == "HTTP 404: workflow not found"
    assert len(standin.state.calls) == 1
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["last_error"], row["run_count"]) == (
        "error",
        "HTTP 404: workflow not found",
        "1",
    )
    # Deleted, not made visible again for a retry: nothing left to deliver.
    assert await queue_counts(queue) == (0, 0)


async def test_a_wrong_service_key_is_a_final_401(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    await relay(engine, transport)

    async with running_executor(
        database_url, queue, standin.url, scheduler_service_api_key=SERVICE_KEY + "-wrong"
    ):
        runs = await wait_for_runs(engine, [run_id])

    assert (runs[run_id]["status"], runs[run_id]["http_status"]) == ("failed", 401)
    assert runs[run_id]["error"] == "HTTP 401: invalid service key"
    assert runs[run_id]["attempts"] == 1


async def test_a_call_that_times_out_is_retried_under_the_same_execution_id(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin.state.script.extend([Scripted(200, delay=5), Scripted(200)])
    await relay(engine, transport)

    async with running_executor(
        database_url, queue, standin.url, scheduler_http_read_timeout_seconds=0.5
    ):
        runs = await wait_for_runs(engine, [run_id])

    run = runs[run_id]
    assert (run["status"], run["attempts"], run["error"]) == ("succeeded", 2, None)
    assert [call["executionId"] for call in standin.state.calls] == [run_id, run_id]


async def test_a_429_with_retry_after_waits_at_least_that_long_before_the_next_attempt(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    # Retry-After is above the retry ceiling (2 s), so only the header can explain the wait.
    standin.state.script.extend([Scripted(429, retry_after="4"), Scripted(200)])
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 2)
    first, second = standin.state.calls
    assert first["executionId"] == second["executionId"] == run_id
    assert second["receivedAt"] - first["receivedAt"] >= 4.0


async def test_a_run_out_of_attempts_is_dead_and_its_message_goes_to_the_dlq(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin.state.script.extend([Scripted(503), Scripted(502, body="bad gateway")])
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url, scheduler_max_attempts=2):
        runs = await wait_for_runs(engine, [run_id])
        [dead] = await receive_all(queue, queue.dlq_url or "", expect=1)

    run = runs[run_id]
    assert (run["status"], run["attempts"], run["http_status"]) == ("dead", 2, 502)
    assert run["error"] == "retries exhausted after 2 attempts: HTTP 502: bad gateway"
    assert [call["status"] for call in standin.state.calls] == [503, 502]
    assert json.loads(dead["Body"])["runId"] == run_id
    assert dead["MessageAttributes"]["DeadLetterReason"]["StringValue"] == run["error"]
    assert await queue_counts(queue) == (0, 0)
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["last_error"]) == ("error", run["error"])


async def test_a_workflow_id_that_could_change_the_path_is_never_called(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine, workflow_id="../../admin")
    [run_id] = await add_runs(engine, schedule)
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        [dead] = await receive_all(queue, queue.dlq_url or "", expect=1)

    reason = dead["MessageAttributes"]["DeadLetterReason"]["StringValue"]
    assert reason == "invalid message: field workflowId is not a valid id"
    assert standin.state.calls == []
    assert (await run_row(engine, run_id))["status"] == "enqueued"
    assert await queue_counts(queue) == (0, 0)
