"""The executor on the database transport (no queue: runs are received from ``schedule_runs``)
while its database is down: it says so once, keeps trying with a backoff, and goes back to work
when the database returns (it used to end its receive loops without a word)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.transport.database import DatabaseTransport
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.executor.conftest import StandIn
from tests.executor.world import add_runs, add_schedule, relay, running_executor, wait_for_runs
from tests.support import postgres


async def test_a_database_outage_is_logged_once_and_the_executor_recovers(
    engine: AsyncEngine,
    database_url: str,
    queue: QueueEndpoint,
    standin: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="keeperhub_scheduler.executor")
    schedule = await add_schedule(engine)
    async with running_executor(
        database_url, queue, standin.url, sqs_queue_url=None, scheduler_dlq_url=None
    ) as executor:
        assert isinstance(executor.transport, DatabaseTransport)
        postgres.allow_connections(database_url, False)
        try:
            await asyncio.sleep(6)  # several receives, each failing the same way
        finally:
            postgres.allow_connections(database_url, True)
        run_ids = await add_runs(engine, schedule, 3)
        await relay(engine, executor.transport)
        runs = await wait_for_runs(engine, run_ids, timeout=60)

    assert {run["status"] for run in runs.values()} == {"succeeded"}
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("receive failed") == 1, messages
    assert "receive recovered" in messages
