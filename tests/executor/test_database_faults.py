"""The executor's connections are not pinged before use: a connection that died meanwhile (a
PostgreSQL restart, a failover) must cost one retried statement, never a run or a second call."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.dev.standin import Scripted
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.conftest import StandIn
from tests.executor.world import (
    FIRST_OCCURRENCE,
    add_runs,
    add_schedule,
    relay,
    running_executor,
    wait_for_runs,
    wait_until,
)
from tests.support import postgres


async def test_connections_killed_between_runs_cost_no_run_and_no_second_call(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schedule = await add_schedule(engine)
    [first] = await add_runs(engine, schedule)
    await relay(engine, transport)

    async with running_executor(database_url, queue, standin.url):
        await wait_for_runs(engine, [first])
        killed = postgres.terminate_connections(database_url)
        assert killed > 0  # the executor's pooled ones among them
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="keeperhub_scheduler.executor"):
            [second] = await add_runs(engine, schedule, first=FIRST_OCCURRENCE + timedelta(hours=1))
            await relay(engine, transport)
            runs = await wait_for_runs(engine, [second])

    assert runs[second]["status"] == "succeeded"
    assert sorted(call["executionId"] for call in standin.state.calls) == sorted([first, second])
    messages = [record.getMessage() for record in caplog.records]
    assert "database connection was lost; running the statement once more" in messages
    assert "delivery failed; it will be redelivered" not in messages


async def test_an_answer_is_recorded_through_a_database_outage_without_a_second_call(
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database goes away while KeeperHub is being called: the answer is kept and written
    when the database is back, instead of being lost and the run called again."""
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin.state.script.append(Scripted(200, delay=2))
    await relay(engine, transport)

    try:
        with caplog.at_level(logging.WARNING, logger="keeperhub_scheduler.executor"):
            async with running_executor(database_url, queue, standin.url):
                await wait_until(lambda: len(standin.state.calls) == 1, what="the call")
                postgres.allow_connections(database_url, False)  # and ends its connections

                def retrying() -> bool:
                    messages = [record.getMessage() for record in caplog.records]
                    return "could not record an outcome; trying again" in messages

                await wait_until(retrying, what="the record to fail and be tried again")
                postgres.allow_connections(database_url, True)
                runs = await wait_for_runs(engine, [run_id])
    finally:
        postgres.allow_connections(database_url, True)

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 1)
    assert [call["executionId"] for call in standin.state.calls] == [run_id]
