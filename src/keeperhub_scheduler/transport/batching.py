"""Single SQS operations (delete, change visibility) gathered into batch calls as load allows.

Natural batching, no timers: an operation that finds no batch call in flight goes out at once,
alone, so an idle executor adds no latency; operations that arrive while calls are in flight
wait for one of them to finish and then go out together, up to 10 a call (SQS's limit). The
busier the executor, the fuller the batches and the fewer requests the queue has to answer: one
``DeleteMessageBatch`` instead of ten ``DeleteMessage``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from keeperhub_scheduler.transport.base import TransportError

BATCH_LIMIT = 10
BatchCall = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class Batcher:
    """``submit(entry)`` returns when the batch call that carried the entry answered for it, and
    raises ``TransportError`` when the call failed or SQS refused that entry."""

    def __init__(self, call: BatchCall, *, max_in_flight: int = 4) -> None:
        self._call = call  # takes the entries (with their batch Ids), returns SQS's answer
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, entry: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        self._dispatch()
        await future

    def _dispatch(self) -> None:
        while self._pending and len(self._in_flight) < self._max_in_flight:
            if self._in_flight and len(self._pending) < BATCH_LIMIT:
                return  # a call is out: let this batch fill until one comes back
            batch = self._pending[:BATCH_LIMIT]
            del self._pending[:BATCH_LIMIT]
            task = asyncio.create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._dispatch()

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        entries = [entry | {"Id": str(index)} for index, (entry, _) in enumerate(batch)]
        try:
            answer = await self._call(entries)
        except Exception as error:
            failure = error if isinstance(error, TransportError) else TransportError(str(error))
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        refused = {item["Id"]: item for item in answer.get("Failed", [])}
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue  # its submitter was cancelled; the entry went out all the same
            item = refused.get(str(index))
            if item is None:
                future.set_result(None)
            else:
                future.set_exception(
                    TransportError(f"{item.get('Code', 'refused')}: {item.get('Message', '')}")
                )
