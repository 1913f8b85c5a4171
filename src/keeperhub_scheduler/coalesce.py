"""Natural batching: single operations gathered into batch calls as load allows.

An operation submitted when no call is out goes out at the end of the current turn of the event
loop, together with whatever else was submitted in that turn (the deliveries of one receive start
in one turn, so their claims go out as one statement). Operations submitted while calls are out
wait for one of them to come back and then go out together, up to ``limit`` a call. An idle
process adds no latency; a busy one makes fewer, fuller calls: one ``DeleteMessageBatch`` instead
of ten ``DeleteMessage``, one claim statement instead of ten.

Operations that arrive one turn apart (the outcomes of one receive's calls, each answered in a
turn of its own) would each go out alone while no call is out: with ``linger`` a batch waits until
``linger`` has passed with nothing new (or ``limit`` have come), and never longer than
``LONGEST_LINGERS`` lingers after its first item. A fixed wait from the first item cut a
receive's outcomes in two whenever its slowest call answered just past it: one statement and one
delete in nine were a second, partial one; with the wait counted from the latest item, about
one in a hundred.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# The batch call answers each item in order, with its result or the exception for that item.
BatchCall = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]
LONGEST_LINGERS = 4  # how many lingers a batch waits at most, however steadily items come


class Coalescer(Generic[T, R]):
    """``submit(item)`` returns the item's result once the call that carried it answered; it
    raises the item's exception, or the call's own when the whole call failed."""

    def __init__(
        self, call: BatchCall[T, R], *, limit: int, max_in_flight: int = 4, linger: float = 0.0
    ) -> None:
        self._call = call
        self._limit = limit
        self._max_in_flight = max_in_flight
        self._linger = linger
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_scheduled: asyncio.Handle | None = None
        self._first = self._latest = 0.0  # when the waiting batch's first and latest item came

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._flush_scheduled is not None and len(self._pending) >= self._limit:
            self._flush_scheduled.cancel()  # a full batch does not wait out the linger
            self._flush_now()
        elif self._linger > 0:
            self._latest = loop.time()  # the timer looks at it when it fires (see _lingered)
            if self._flush_scheduled is None:
                self._first = self._latest
                self._flush_scheduled = loop.call_later(self._linger, self._lingered)
        elif self._flush_scheduled is None:
            # At the end of this turn, with its other submissions.
            self._flush_scheduled = loop.call_soon(self._flush_now)
        return await future

    def _lingered(self) -> None:
        """The linger is up since the first item: wait on while items keep coming (one timer a
        batch, moved on when it fires, not one per item), up to the longest wait."""
        loop = asyncio.get_running_loop()
        quiet_at = self._latest + self._linger
        if quiet_at > loop.time() and quiet_at < self._first + LONGEST_LINGERS * self._linger:
            self._flush_scheduled = loop.call_at(quiet_at, self._lingered)
            return
        self._flush_now()

    def _flush_now(self) -> None:
        self._flush_scheduled = None
        self._dispatch()

    def _dispatch(self) -> None:
        while self._pending and len(self._in_flight) < self._max_in_flight:
            if self._in_flight and len(self._pending) < self._limit:
                return  # a call is out: let this batch fill until one comes back
            batch = self._pending[: self._limit]
            del self._pending[: self._limit]
            task = asyncio.create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._dispatch()

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        results: Sequence[R | BaseException]
        try:
            results = await self._call([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} was answered {len(results)} times")
        except Exception as error:
            results = [error] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # its submitter was cancelled; the item went out all the same
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
