"""The sender (the relay): leased runs in, batch sends out, always ``concurrency`` in flight.

The claim and the leftover feed (the store's ``lease_pending``) ``put`` leased runs as they get
them, cut into batches of the transport's ``batch_size`` (ten: SQS's ``SendMessageBatch``);
``concurrency`` sender tasks each take a batch and send it in one call, so the queue sees a steady
stream of full batches instead of bursts that wait for their slowest call. Sent runs are marked
``enqueued`` in groups by a marker task (the store's ``mark_enqueued``: one UPDATE for all the runs
sent within the transport's ``mark_within_seconds``, or for ``MARK_GROUP`` of them), each with the
instant the queue accepted it, however much later the mark is written.

The buffer is bounded: a producer waits for room before it leases more, so a run never waits long
enough in memory for its lease to lapse (another dispatcher would then send it too). When a send
fails the stream stops sending: every run it still holds, or is given later, has its lease given
back at once (one UPDATE), stays pending, and is sent by a later pass once the queue answers.
After a failure the next stream ``probe``s: one batch alone, and the others only once it went
through, so that a queue that is still hung receives one batch, not a full volley, each try
(a send that timed out may still be delivered when the queue wakes up: a duplicate to drop).
A crash after the claim's commit and before the send leaves the runs pending: when their lease
lapses, the next pass sends them. The lease is short and a renewer task renews it, every third of
it, for every run the stream still holds (buffered, being sent, or sent and not yet marked), so a
killed dispatcher's runs are sent by another within seconds, and a live one's are never sent twice
however slow the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

from keeperhub_scheduler.db.store import RunStore
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.transport.base import Transport
from keeperhub_scheduler.transport.messages import outgoing

log = logging.getLogger("keeperhub_scheduler.dispatcher")

MARK_GROUP = 500  # sent runs that are marked at once without waiting for the transport's time


@dataclass
class RelayResult:
    sent: int = 0
    failed: int = 0
    lags: list[float] = field(default_factory=list)  # enqueued - scheduled_for, in seconds


class RelayStream:
    def __init__(
        self,
        store: RunStore,
        transport: Transport,
        *,
        signing_key: bytes | None,
        concurrency: int = 16,
        buffer: int = 2000,
        probe: bool = False,
        lease: timedelta | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.signing_key = signing_key
        self.concurrency = concurrency
        self.buffer = max(buffer, transport.batch_size * concurrency)
        self.result = RelayResult()
        self.failed = False
        # Runs wait in batches of a send each (None: no more), put and taken whole: a queue
        # operation per run cost more than the rest of the relay's work on it.
        self._batches: asyncio.Queue[list[RunRef] | None] = asyncio.Queue()
        self._buffered = 0  # runs in ``_batches``
        self._room = asyncio.Condition()
        self._room_wanted: list[int] = []  # how much room each waiting producer needs
        # Sent runs not yet marked: each accepted batch's run ids, with when it was accepted.
        self._to_mark: list[tuple[float, list[str]]] = []
        self._to_mark_count = 0
        self._marked = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._marker: asyncio.Task[None] | None = None
        self._closing = False
        self._probing: asyncio.Lock | None = asyncio.Lock() if probe else None
        self.lease = lease  # None: leases are not renewed (a caller that holds runs briefly)
        self._held: set[str] = set()  # leased runs not yet marked enqueued or given back
        self._renewer: asyncio.Task[None] | None = None

    # --- producers ----------------------------------------------------------------------------
    async def wait_for_room(self, count: int) -> None:
        """Wait until ``count`` more runs fit in the buffer (before leasing them)."""
        async with self._room:
            self._room_wanted.append(count)
            try:
                await self._room.wait_for(
                    lambda: self.failed or self._buffered + count <= self.buffer
                )
            finally:
                self._room_wanted.remove(count)

    async def put(self, runs: Sequence[RunRef]) -> None:
        """Send these leased runs (or give their leases back if the stream has failed).

        What does not fit in the buffer (a catch-up that fired many occurrences per schedule)
        has its lease given back at once: left leased in memory it could outlive the lease and
        be sent by another dispatcher too. The leftover feed brings it back as room frees up.
        """
        if self.failed:
            await self._give_back(runs)
            return
        room = max(0, self.buffer - self._buffered)
        size = self.transport.batch_size
        for start in range(0, min(room, len(runs)), size):
            batch = list(runs[start : min(start + size, room)])
            self._held.update(run.run_id for run in batch)
            self._batches.put_nowait(batch)
            self._buffered += len(batch)
        if len(runs) > room:
            await self.store.release([run.run_id for run in runs[room:]])

    # --- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> RelayStream:
        self._tasks = [asyncio.create_task(self._sender()) for _ in range(self.concurrency)]
        self._marker = asyncio.create_task(self._mark_loop())
        if self.lease is not None:
            self._renewer = asyncio.create_task(self._renew_loop(self.lease))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Send everything still buffered, mark it, and stop."""
        for _ in self._tasks:
            self._batches.put_nowait(None)
        try:
            await asyncio.gather(*self._tasks)
        finally:
            self._closing = True
            self._marked.set()
            if self._marker:
                await self._marker
            if self._renewer:
                self._renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._renewer

    # --- senders and marker -------------------------------------------------------------------
    async def _sender(self) -> None:
        while True:
            batch, done = await self._take()
            if batch:
                await self._send(batch)
            if done:
                return

    async def _take(self) -> tuple[list[RunRef], bool]:
        """The next batch, waited for; ``True`` once there are no more."""
        batch = await self._batches.get()
        if batch is None:
            return [], True
        self._buffered -= len(batch)
        # A producer is woken once what it waits to put fits, not at every send: each wake-up
        # would cost it a turn only to wait again.
        if self._room_wanted and self._buffered + min(self._room_wanted) <= self.buffer:
            async with self._room:
                self._room.notify_all()
        return batch, False

    async def _send(self, batch: list[RunRef]) -> None:
        if self._probing is not None:
            async with self._probing:  # one batch at a time until one goes through
                if self._probing is not None and not self.failed:
                    await self._deliver(batch)
                    if not self.failed:
                        self._probing = None
                    return
        if self.failed:
            await self._give_back(batch)
            return
        await self._deliver(batch)

    async def _deliver(self, batch: list[RunRef]) -> None:
        messages = [outgoing(run, self.signing_key) for run in batch]
        accepted = await self.transport.send(messages)
        sent = [run.run_id for run in batch if run.run_id in accepted]
        if sent:
            self._to_mark.append((time.monotonic(), sent))
            self._to_mark_count += len(sent)
            if self._to_mark_count >= MARK_GROUP:
                self._marked.set()
        refused = [run for run in batch if run.run_id not in accepted]
        if refused:
            self._fail()
            await self._give_back(refused)

    def _fail(self) -> None:
        if not self.failed:
            self.failed = True
            log.warning("the queue refused a batch; this pass stops sending")

    async def _give_back(self, runs: Sequence[RunRef]) -> None:
        self.result.failed += len(runs)
        self._held.difference_update(run.run_id for run in runs)
        try:
            await self.store.release([run.run_id for run in runs])
        except Exception:
            # The leases then lapse by themselves; the runs are sent a little later.
            log.exception("could not give leases back")
        async with self._room:
            self._room.notify_all()

    async def _mark_loop(self) -> None:
        # Each mark is a round trip with its own CPU on both sides: at a thousand runs a second,
        # marking every 20 ms cost the dispatcher 3% of its CPU and PostgreSQL 10% of its own.
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._marked.wait(), self.transport.mark_within_seconds)
            self._marked.clear()
            await self._flush()
            if self._closing:
                await self._flush()
                return

    async def _renew_loop(self, lease: timedelta) -> None:
        """Renew the leases of the runs still held, every third of the lease: a renewal that
        fails (a database blip) is tried again before the lease lapses."""
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await self.store.renew_relay_leases(list(self._held), lease)
            except Exception as error:
                log.warning("could not renew relay leases", extra={"error": type(error).__name__})

    async def _flush(self) -> None:
        groups, self._to_mark, self._to_mark_count = self._to_mark, [], 0
        if not groups:
            return
        now = time.monotonic()
        ids: list[str] = []
        seconds_ago: list[float] = []
        for accepted_at, group in groups:
            ids += group
            seconds_ago += [now - accepted_at] * len(group)
        try:
            lags = await self.store.mark_enqueued(ids, seconds_ago)
        except Exception:
            # Sent but not marked: they stay pending and are sent again after the lease (the
            # executor drops the duplicate delivery). Nothing is lost.
            log.exception("could not mark sent runs enqueued")
            return
        finally:
            self._held.difference_update(ids)
        self.result.sent += len(ids)
        self.result.lags += lags
