"""A drain that times out hands its calls' messages back at once; an idle executor stops its long
poll on SIGTERM; and a message for a run that does not exist is logged as what it is."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import load_settings
from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.processes import build_executor, opened
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.conftest import StandIn
from tests.executor.world import (
    add_runs,
    add_schedule,
    executor_settings,
    relay,
    run_row,
    running_executor,
    send_run,
    wait_until,
    wait_until_settled,
)
from tests.support.sqs import queue_counts


async def test_a_message_for_a_run_that_does_not_exist_is_not_called_a_duplicate(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    await send_run(transport, engine, run_id)
    async with engine.begin() as connection:  # the run goes (deleted with its schedule, say)
        await connection.execute(schedule_runs.delete().where(schedule_runs.c.id == run_id))

    with caplog.at_level(logging.INFO, logger="keeperhub_scheduler.executor"):
        async with running_executor(database_url, queue, standin.url) as executor:
            await wait_until_settled(executor, queue)

    messages = [record.getMessage() for record in caplog.records]
    assert "duplicate delivery dropped" not in messages
    assert "message for a run that does not exist (deleted, or never made); dropped" in messages
    assert standin.state.calls == []


async def test_a_drain_that_times_out_releases_the_messages_of_its_calls(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
) -> None:
    """The call outlives the drain: its message is visible again as the executor exits, not a
    visibility timeout (30 s here) later."""
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    await relay(engine, transport)
    standin.state.stall_rate, standin.state.stall_seconds = 1.0, 10.0

    async with running_executor(
        database_url, queue, standin.url, scheduler_drain_seconds=1.0
    ) as executor:
        await wait_until(lambda: _called(standin), 30, "the call to start")
        assert executor.busy == 1

    visible, in_flight = await queue_counts(queue)
    assert (visible, in_flight) == (1, 0)
    assert (await run_row(engine, run_id))["status"] == "running"  # taken over when it lapses


async def _called(standin: StandIn) -> bool:
    return len(standin.state.calls) == 1


async def test_an_idle_executor_stops_its_long_poll_when_told_to_stop(
    database_url: str, queue: QueueEndpoint, standin: StandIn
) -> None:
    """A 20 s long poll and nothing to receive: the drain does not wait the poll out."""
    settings = load_settings(
        **executor_settings(database_url, queue, standin.url, scheduler_receive_wait_seconds=20)
    )
    async with opened(settings, pre_ping=False, overflow=0) as (engine, transport):
        executor, keeperhub = build_executor(settings, engine, transport)
        stop = asyncio.Event()
        task = asyncio.create_task(executor.run(stop))
        await asyncio.sleep(1.0)  # the receivers are in their long polls
        stop.set()
        # Well inside the 20 s poll; without the cut it cannot end before the poll does.
        done, _ = await asyncio.wait({task}, timeout=10)
        await task
        await keeperhub.close()
    assert done == {task}
