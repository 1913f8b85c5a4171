"""The embedded mode's transport: runs are received straight from ``schedule_runs``.

There is no queue: the relay's ``send`` accepts everything (the relay then marks the runs
enqueued), and ``receive`` reads runs that are enqueued, due for a retry, or running under a lapsed
lease. The messages it hands over are built (and signed) exactly as the SQS path builds them, so
the executor runs the same verification, claim and settlement code in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.telemetry.logs import describe
from keeperhub_scheduler.transport.base import (
    LONGEST_DELAY_SECONDS,
    Delivery,
    OutgoingMessage,
    TransportError,
)
from keeperhub_scheduler.transport.messages import encode

POLL_SECONDS = 0.1


class DatabaseTransport:
    # As SQS's, so that the relay, the receiver and the retries behave alike in both modes.
    batch_size = 10
    max_delay_seconds = LONGEST_DELAY_SECONDS
    mark_within_seconds = 0.02  # the mark is the delivery: the executor reads enqueued runs

    def __init__(self, engine: AsyncEngine, signing_key: bytes | None) -> None:
        self.engine = engine
        self.store = store_for(engine)
        self.signing_key = signing_key
        self.wake = asyncio.Event()  # set by an in-process dispatcher after it relays
        self._held: set[str] = set()  # runs handed to this process's executor, not yet settled

    async def send(self, messages: Sequence[OutgoingMessage]) -> set[str]:
        if messages:
            self.wake.set()
        return {message.run_id for message in messages}

    async def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int | None = None
    ) -> list[Delivery]:
        """Runs ready to claim; ``visibility_seconds`` does not apply (a held run is kept from
        this process's next receive, and from everyone by its lease once claimed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            try:
                deliveries = await self._ready(max_messages)
            except (SQLAlchemyError, OSError) as error:
                # The database is this transport's queue: its outage is the queue's, which the
                # executor logs once and retries with a backoff (it must not end the loop).
                raise TransportError(describe(error)) from error
            if deliveries or loop.time() >= deadline:
                return deliveries
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), min(POLL_SECONDS, deadline - loop.time()))

    async def _ready(self, limit: int) -> list[Delivery]:
        deliveries = []
        for run in await self.store.ready_runs(limit, self._held):
            body, attributes = encode(run, self.signing_key)
            deliveries.append(Delivery(body, attributes, handle=run.run_id, message_id=run.run_id))
            self._held.add(run.run_id)
        return deliveries

    def _settled(self, delivery: Delivery) -> None:
        self._held.discard(delivery.handle)

    async def delete(self, delivery: Delivery) -> None:
        self._settled(delivery)

    async def retry_later(self, delivery: Delivery, delay_seconds: int) -> None:
        self._settled(delivery)  # the run's next_attempt_at already says when

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        return None  # the run's lease, extended by the executor, is the only visibility here

    async def release(self, delivery: Delivery) -> None:
        self._settled(delivery)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._settled(delivery)  # the run is recorded dead with the reason

    async def check(self) -> None:
        async with self.engine.connect() as connection:
            await database_now(connection)

    async def depth(self) -> None:
        return None  # no queue: ``status`` counts the runs themselves

    async def close(self) -> None:
        return None
