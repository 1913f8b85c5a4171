"""Deletes and visibility changes of many deliveries share SQS batch calls: each caller still
learns its own entry's fate, and one bad entry fails only its own caller."""

from __future__ import annotations

import asyncio

import pytest

from keeperhub_scheduler.transport.base import Delivery, OutgoingMessage, TransportError
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.support.sqs import queue_counts


async def received(transport: SqsTransport, count: int) -> list[Delivery]:
    await transport.send([OutgoingMessage(f"m{i}", f"body {i}", {}) for i in range(count)])
    deliveries: list[Delivery] = []
    while len(deliveries) < count:
        deliveries += await transport.receive(10, 1)
    return deliveries


async def test_concurrent_deletes_share_batches_and_each_learns_its_own_fate(
    queue: QueueEndpoint, transport: SqsTransport
) -> None:
    deliveries = await received(transport, 35)
    forged = Delivery("body", {}, handle="not-a-receipt-handle")

    results = await asyncio.gather(
        *(transport.delete(delivery) for delivery in [*deliveries, forged]),
        return_exceptions=True,
    )

    assert results[:-1] == [None] * 35
    assert isinstance(results[-1], TransportError)
    assert await queue_counts(queue) == (0, 0)


async def test_concurrent_visibility_changes_share_batches(
    queue: QueueEndpoint, transport: SqsTransport
) -> None:
    deliveries = await received(transport, 23)
    assert await queue_counts(queue) == (0, 23)

    await asyncio.gather(*(transport.release(delivery) for delivery in deliveries))

    assert await queue_counts(queue) == (23, 0)


async def test_a_queue_that_is_gone_fails_every_caller_of_the_batch(
    queue: QueueEndpoint, transport: SqsTransport
) -> None:
    deliveries = await received(transport, 3)
    gone = SqsTransport(
        QueueEndpoint(
            queue_url=queue.queue_url + "-gone",
            dlq_url=None,
            region=queue.region,
            endpoint_url=queue.endpoint_url,
            access_key_id="test",
            secret_access_key="test",
        )
    )
    await gone.start()
    try:
        for delivery in deliveries:
            with pytest.raises(TransportError):
                await gone.delete(delivery)
    finally:
        await gone.close()
