"""A consumer that runs beside the dispatcher, receiving and deleting what the queue holds, and
riding out the outages the tests cause."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client
from tests.support import sqs


class Consumer:
    """Receives and deletes everything on the queue, riding out the outage."""

    def __init__(self, queue: QueueEndpoint, receivers: int = 1) -> None:
        self.queue = queue
        self.receivers = receivers
        self.messages: list[dict[str, Any]] = []
        self.errors = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with AsyncExitStack() as stack:
            client = await open_client(self.queue, stack, pool=max(4, self.receivers))
            await asyncio.gather(*(self._loop(client) for _ in range(self.receivers)))

    async def _loop(self, client: Any) -> None:
        while not self.stop.is_set():
            try:
                await self._receive(client)
            except Exception:
                self.errors += 1
                await asyncio.sleep(0.5)

    async def _receive(self, client: Any) -> None:
        answer = await client.receive_message(
            QueueUrl=self.queue.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return
        self.messages += messages
        await client.delete_message_batch(
            QueueUrl=self.queue.queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(messages)
            ],
        )

    async def wait_for(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                await asyncio.sleep(0.2)

    async def wait_until_drained(self, timeout: float = 120.0) -> None:
        """Until the queue holds nothing, visible or in flight, and nothing new arrives.

        A receive whose answer was lost (the queue froze mid-call) leaves its messages in
        flight until their visibility timeout; they are received again after it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await sqs.queue_counts(self.queue) != (0, 0):
            assert loop.time() < deadline, "the queue did not drain"
            await asyncio.sleep(0.5)
        await self.wait_until_quiet()

    async def wait_until_quiet(self, seconds: float = 3.0) -> None:
        """Until nothing new arrived for ``seconds`` (the queue is drained)."""
        seen = -1
        while seen != len(self.messages):
            seen = len(self.messages)
            await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def consuming(queue: QueueEndpoint, receivers: int = 1) -> AsyncIterator[Consumer]:
    consumer = Consumer(queue, receivers)
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop.set()
        await task
