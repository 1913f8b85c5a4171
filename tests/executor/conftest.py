"""Fixtures of the executor's tests: an engine on the test's database, an SQS transport on the
test's queue, and the KeeperHub stand-in served from this event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.dev.standin import StandInState
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.support.standin import running_standin


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def transport(queue: QueueEndpoint) -> AsyncIterator[SqsTransport]:
    transport = await SqsTransport(queue).start()
    yield transport
    await transport.close()


class StandIn:
    def __init__(self, url: str, state: StandInState) -> None:
        self.url = url
        self.state = state

    def calls_for(self, execution_id: str) -> list[dict[str, object]]:
        return [call for call in self.state.calls if call["executionId"] == execution_id]


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with running_standin() as (url, state):
        yield StandIn(url, state)
