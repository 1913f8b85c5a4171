"""The executor's loop: several long polls in flight, a bounded number of executions at once, and
a clean drain on SIGTERM (stop receiving, let calls finish, hand back what was not started)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Coroutine
from typing import Any, TypeVar

from keeperhub_scheduler.backoff import Backoff
from keeperhub_scheduler.executor.handle import DeliveryHandler
from keeperhub_scheduler.telemetry import metrics
from keeperhub_scheduler.telemetry.health import Heartbeat
from keeperhub_scheduler.telemetry.logs import RepeatedFailure
from keeperhub_scheduler.transport.base import Delivery, Transport, TransportError

log = logging.getLogger("keeperhub_scheduler.executor")
RELEASE_SECONDS = 5.0  # how long a cancelled delivery's release may take before exit
T = TypeVar("T")


class Slots:
    """Execution capacity: a receive loop reserves slots before it asks the queue for messages,
    so the executor never holds messages it cannot start (they would burn their visibility)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._changed = asyncio.Condition()
        self._waiting: list[int] = []  # how many slots each waiting receive loop needs

    async def reserve(self, most: int, stop: asyncio.Event, heartbeat: Heartbeat) -> int:
        # A full batch or none: a receive for the few slots just freed would cost a whole
        # receive (and a claim statement) for a part of a batch; waiting for a full one keeps
        # every per-receive cost shared by as many runs as the queue gives.
        enough = min(most, self.size)
        async with self._changed:
            while self.free < enough and not stop.is_set():
                heartbeat.beat()  # waiting for capacity is alive, not wedged
                self._waiting.append(enough)
                try:
                    async with asyncio.timeout(1.0):
                        await self._changed.wait()
                except TimeoutError:
                    pass
                finally:
                    self._waiting.remove(enough)
            if stop.is_set():
                return 0
            taken = min(most, self.free)
            self.free -= taken
            return taken

    async def release(self, count: int) -> None:
        if count <= 0:
            return
        async with self._changed:
            self.free += count
            # Wake the waiting receive loops only once one of them can go on: waking them at
            # every slot freed (each run's end) cost a wake-up and a new timed wait per run.
            if self._waiting and self.free >= min(self._waiting):
                self._changed.notify_all()

    @property
    def busy(self) -> int:
        return self.size - self.free


class Executor:
    def __init__(
        self,
        transport: Transport,
        handler: DeliveryHandler,
        *,
        concurrency: int = 50,
        receivers: int = 4,
        wait_seconds: int = 20,
        drain_seconds: float = 25.0,
        receive_visibility: int | None = None,
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.slots = Slots(concurrency)
        self.receivers = receivers
        self.wait_seconds = wait_seconds
        self.drain_seconds = drain_seconds
        # Received messages stay invisible this long unless extended (the hand-off window);
        # None: the queue's own visibility timeout.
        self.receive_visibility = receive_visibility
        self.heartbeat = Heartbeat(max_silence=max(60.0, wait_seconds * 3))
        self._tasks: set[asyncio.Task[None]] = set()
        # The queue (or, on the database transport, the database) down: one line per distinct
        # failure and a reminder with a count, shared by the receive loops, not a line per try.
        self._receive_failures = RepeatedFailure(
            log, "receive", level=logging.WARNING, traceback=False
        )

    @property
    def busy(self) -> int:
        """Deliveries received and not yet settled."""
        return len(self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then drain; returns when everything started has settled.

        The drain has one deadline, ``drain_seconds`` from the stop: the receive loops stop
        their long poll at once (an idle executor exits promptly; a receive cut short may have
        taken messages, which reappear after the short hand-off visibility) while the calls in
        flight finish and are recorded. Whatever is still running at the deadline is cancelled
        and its message released (visible at once): the next executor finds the run held until
        its lease lapses, waits that out and takes it over, so nothing is lost or long delayed.
        """
        receivers = [asyncio.create_task(self._receive_loop(stop)) for _ in range(self.receivers)]
        await stop.wait()
        log.info("draining", extra={"in_flight": len(self._tasks)})
        deadline = asyncio.get_running_loop().time() + self.drain_seconds
        late_receivers = await _finish_by(receivers, deadline)
        late_calls = await _finish_by(set(self._tasks), deadline)
        if late_receivers or late_calls:
            log.warning(
                "drain timed out; cancelled",
                extra={"receives": late_receivers, "deliveries": late_calls},
            )
        log.info("drained")

    async def _receive_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(first=1.0, longest=30.0)  # while the queue does not answer
        while not stop.is_set():
            reserved = await self.slots.reserve(self.transport.batch_size, stop, self.heartbeat)
            if reserved == 0:
                return
            try:
                deliveries = await _unless_stopped(
                    self.transport.receive(reserved, self.wait_seconds, self.receive_visibility),
                    stop,
                )
            except TransportError as error:
                await self.slots.release(reserved)
                self.heartbeat.beat()  # the loop turns; the queue is down, not the loop
                delay = backoff.next()
                self._receive_failures.failed(error, retry_in=delay)
                await _sleep_unless(stop, delay)
                continue
            if deliveries is None:  # stopped during the long poll
                await self.slots.release(reserved)
                return
            backoff.reset()
            self._receive_failures.succeeded()
            if deliveries:
                metrics.MESSAGES_RECEIVED.inc(len(deliveries))
                self.heartbeat.worked()
            else:
                self.heartbeat.beat()
            await self.slots.release(reserved - len(deliveries))
            if stop.is_set():
                await self._hand_back(deliveries)
                return
            for delivery in deliveries:
                self._start(delivery)

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._handle(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            await self.handler.handle(delivery)
        except asyncio.CancelledError:
            # The drain's deadline: the call is abandoned, so its message is made visible now
            # rather than when its extended visibility would end.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_SECONDS):
                    await asyncio.shield(self.transport.release(delivery))
            raise
        except Exception:
            # A bug or a database outage: the message is not settled, so it comes back after
            # its visibility timeout and is tried again. Log it; never kill the loop.
            log.exception("delivery failed; it will be redelivered")
        finally:
            await self.slots.release(1)

    async def _hand_back(self, deliveries: list[Delivery]) -> None:
        """Received during shutdown, never started: visible again at once for another executor."""
        if deliveries:
            log.info(
                "handing back deliveries received while draining", extra={"count": len(deliveries)}
            )
        results = await asyncio.gather(
            *(self.transport.release(delivery) for delivery in deliveries), return_exceptions=True
        )
        failed = sum(isinstance(result, Exception) for result in results)
        if failed:
            log.warning(
                "could not hand back deliveries; they reappear after their visibility timeout",
                extra={"count": failed},
            )
        await self.slots.release(len(deliveries))


async def _finish_by(tasks: Collection[asyncio.Task[None]], deadline: float) -> int:
    """Wait for ``tasks`` until the loop's clock reaches ``deadline``, then cancel the rest;
    return how many had to be cancelled."""
    if not tasks:
        return 0
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _unless_stopped(operation: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``operation``'s result, or None when ``stop`` is set first (it is then cancelled)."""
    task = asyncio.ensure_future(operation)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, TransportError):
        await task
    return None
