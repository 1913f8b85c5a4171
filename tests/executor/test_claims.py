"""The claim: which delivery of a run may execute it, and which are acknowledged and dropped.

A run is executed by one delivery at a time and never again once finished; a run whose executor
died (its lease lapsed) is taken over; a run whose schedule or workflow was turned off, or that
would overlap a run in flight under the ``skip`` policy, is skipped with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import workflow_schedules, workflows
from keeperhub_scheduler.dev.standin import Scripted
from keeperhub_scheduler.runs import RETRY_TOLERANCE
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.conftest import StandIn
from tests.executor.world import (
    add_runs,
    add_schedule,
    relay,
    run_row,
    running_executor,
    schedule_row,
    send_run,
    set_run,
    wait_for_runs,
    wait_until,
    wait_until_settled,
)
from tests.support.sqs import queue_counts

HOUR = timedelta(hours=1)


async def test_a_redelivered_finished_run_is_acknowledged_and_dropped(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url) as executor:
        await wait_for_runs(engine, [run_id])
        await send_run(transport, engine, run_id)  # e.g. SQS delivering a copy again
        await send_run(transport, engine, run_id)
        await wait_until_settled(executor, queue)

    assert [call["executionId"] for call in standin.state.calls] == [run_id]
    run = await run_row(engine, run_id)
    assert (run["status"], run["attempts"]) == ("succeeded", 1)
    assert (await schedule_row(engine, schedule.id))["run_count"] == "1"


async def test_copies_of_one_run_delivered_at_once_execute_it_once(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    run_ids = await add_runs(engine, schedule, 20)
    await relay(engine, transport)
    for run_id in run_ids:
        await send_run(transport, engine, run_id)
        await send_run(transport, engine, run_id)

    # A copy that finds its run held waits out the holder's lease (4 s here, not 25).
    async with running_executor(
        database_url, queue, standin.url, scheduler_visibility_timeout_seconds=6
    ) as executor:
        await wait_for_runs(engine, run_ids)
        await wait_until_settled(executor, queue)

    assert sorted(standin.state.counts.elements()) == sorted(run_ids)
    assert (await schedule_row(engine, schedule.id))["run_count"] == "20"


async def test_a_copy_of_a_run_held_under_a_live_lease_waits_for_the_lease_to_end(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """Another executor holds the run: the copy neither runs it nor is deleted (it may be the
    run's only message); it stays invisible until the lease ends, then is looked at again."""
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    lease_until = datetime.now(UTC) + HOUR
    await set_run(engine, run_id, status="running", attempts=1, lease_until=lease_until)
    await send_run(transport, engine, run_id)

    async with running_executor(database_url, queue, standin.url) as executor:

        async def held_back() -> bool:
            return executor.busy == 0 and await queue_counts(queue) == (0, 1)

        await wait_until(held_back, what="the copy to be held back")

    assert standin.state.calls == []
    run = await run_row(engine, run_id)
    assert (run["status"], run["attempts"], run["lease_until"]) == ("running", 1, lease_until)


async def test_a_copy_held_back_takes_the_run_over_when_its_holder_dies(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    # A holder that will never renew its lease (it died two seconds into its call).
    lease_until = datetime.now(UTC) + timedelta(seconds=2)
    await set_run(engine, run_id, status="running", attempts=1, lease_until=lease_until)
    await send_run(transport, engine, run_id)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 2)
    [call] = standin.state.calls
    assert call["receivedAt"] >= lease_until.timestamp()


async def test_a_run_whose_lease_lapsed_is_taken_over_as_the_next_attempt(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    await set_run(engine, run_id, status="running", attempts=1, lease_until=lapsed)
    await send_run(transport, engine, run_id)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 2)
    assert [call["executionId"] for call in standin.state.calls] == [run_id]


async def test_a_retry_whose_message_comes_back_early_waits_for_its_attempt_time(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    due = datetime.now(UTC) + timedelta(seconds=5)
    await set_run(engine, run_id, status="retrying", attempts=1, next_attempt_at=due)
    await send_run(transport, engine, run_id)  # visible at once: five seconds early

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 2)
    [call] = standin.state.calls
    assert call["receivedAt"] >= (due - RETRY_TOLERANCE).timestamp()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("schedule_disabled", "schedule_disabled"),
        ("workflow_disabled", "workflow_disabled"),
        ("paused", "paused"),
        ("pause_ended", None),
    ],
)
async def test_a_run_of_a_schedule_or_workflow_turned_off_since_it_was_decided_is_skipped(
    change: str,
    reason: str | None,
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    await relay(engine, transport)
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        if change == "workflow_disabled":
            statement = update(workflows).where(workflows.c.id == schedule.workflow_id)
            await connection.execute(statement.values(enabled=False))
        else:
            values = {
                "schedule_disabled": {"enabled": False},
                "paused": {"paused_at": now, "paused_until": now + HOUR},
                "pause_ended": {"paused_at": now - HOUR, "paused_until": now},
            }[change]
            statement = update(workflow_schedules).where(workflow_schedules.c.id == schedule.id)
            await connection.execute(statement.values(**values))

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    run = runs[run_id]
    if reason is None:
        assert run["status"] == "succeeded"
        assert len(standin.state.calls) == 1
        return
    assert (run["status"], run["skip_reason"]) == ("skipped", reason)
    assert standin.state.calls == []
    assert await queue_counts(queue) == (0, 0)
    # A skip is not a run: KeeperHub's last_status and run_count stay as they were.
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["run_count"]) == (None, "0")


@pytest.mark.parametrize(("overlap", "calls"), [("skip", 1), ("allow", 2)])
async def test_overlap_policy_decides_whether_a_run_may_start_while_another_is_in_flight(
    overlap: str,
    calls: int,
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """Two runs of one schedule delivered together, each call taking two seconds: under ``skip``
    the one claimed second finds the first in flight and is skipped; under ``allow`` both run."""
    schedule = await add_schedule(engine, overlap=overlap)
    run_ids = await add_runs(engine, schedule, 2)
    standin.state.script.extend([Scripted(200, delay=2), Scripted(200, delay=2)])
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, run_ids)

    assert len(standin.state.calls) == calls
    statuses = sorted((run["status"], run["skip_reason"]) for run in runs.values())
    if overlap == "skip":
        assert statuses == [("skipped", "overlap"), ("succeeded", None)]
    else:
        assert statuses == [("succeeded", None), ("succeeded", None)]


@pytest.mark.parametrize(
    ("other_status", "other_lease", "in_flight"),
    [
        ("running", HOUR, True),  # running under a live lease
        ("retrying", None, True),  # failed once, its next attempt pending
        ("running", -HOUR, False),  # its executor died: not in flight, it will be taken over
        ("enqueued", None, False),  # not started
        ("failed", None, False),  # finished
    ],
)
async def test_in_flight_means_running_under_a_live_lease_or_waiting_for_a_retry(
    other_status: str,
    other_lease: timedelta | None,
    in_flight: bool,
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine, overlap="skip")
    [other] = await add_runs(engine, schedule, status="enqueued")
    later = datetime.now(UTC) + timedelta(minutes=5)
    [run_id] = await add_runs(engine, schedule, first=later)
    lease_until = datetime.now(UTC) + other_lease if other_lease is not None else None
    await set_run(engine, other, status=other_status, attempts=1, lease_until=lease_until)
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    run = runs[run_id]
    if in_flight:
        assert (run["status"], run["skip_reason"]) == ("skipped", "overlap")
        assert standin.state.calls == []
    else:
        assert run["status"] == "succeeded"
        assert [call["executionId"] for call in standin.state.calls] == [run_id]


async def test_a_manual_run_ignores_a_disabled_schedule_but_not_a_disabled_workflow(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    schedule = await add_schedule(engine, enabled=False)
    [run_id] = await add_runs(engine, schedule)
    await set_run(engine, run_id, kind="manual")
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        runs = await wait_for_runs(engine, [run_id])

    assert runs[run_id]["status"] == "succeeded"
    assert len(standin.state.calls) == 1
