"""The transport between dispatcher and executor: one small interface, two implementations.

``sqs.SqsTransport`` is production (the spec's SQS queue); ``database.DatabaseTransport`` is the
embedded mode's, where runs are received straight from ``schedule_runs``. The dispatcher only
``send``s; the executor ``receive``s and then settles each delivery exactly one way: ``delete``
(done), ``retry_later`` (another attempt after a delay), ``dead_letter`` (never again) or
``release`` (not started; visible again at once, e.g. on shutdown).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# A queue's depth as ``Transport.depth`` reports it: {"queue_visible": n, "queue_in_flight": n,
# "dlq_visible": n, "dlq_in_flight": n}, or None for a transport without a queue to count; read for
# ``status`` and for ``/metrics``.
DepthProbe = Callable[[], Awaitable[dict[str, int] | None]]
LONGEST_DELAY_SECONDS = 12 * 3600  # the longest a transport hides a message (SQS's ceiling)
DEPTH_TIMEOUT_SECONDS = 5.0  # a page or a scrape that asks must answer without the queue


@dataclass(frozen=True)
class OutgoingMessage:
    run_id: str  # also the batch entry id, so a partial failure names the runs it lost
    body: str
    attributes: dict[str, str]


@dataclass
class Delivery:
    """One received message. ``handle`` is what settles it (an SQS receipt handle, a run id)."""

    body: str
    attributes: dict[str, str]
    handle: str
    receive_count: int = 1
    message_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # Attributes of another type than String (Binary, Number): not in ``attributes``, refused.
    unreadable_attributes: tuple[str, ...] = ()


class TransportError(Exception):
    """The transport could not be reached or refused the request; callers retry later."""


class Transport(Protocol):
    # Messages one send or receive call carries at most (the relay's and the receiver's batches).
    batch_size: int
    # The longest ``retry_later`` and ``extend`` can hide a delivery (the executor's backoff cap).
    max_delay_seconds: int
    # How long the relay may keep sent runs before marking them enqueued, so that one UPDATE
    # marks many: a queue's message is on its way once sent (the mark is bookkeeping); the
    # database transport delivers a run by that mark.
    mark_within_seconds: float

    async def send(self, messages: Sequence[OutgoingMessage]) -> set[str]:
        """Send messages; return the run ids that were accepted (the rest stay pending)."""
        ...

    async def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int | None = None
    ) -> list[Delivery]:
        """Up to ``max_messages``, invisible to others for ``visibility_seconds`` (None: the
        queue's default) unless extended or settled."""
        ...

    async def delete(self, delivery: Delivery) -> None: ...

    async def retry_later(self, delivery: Delivery, delay_seconds: int) -> None: ...

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        """Keep the delivery invisible to other consumers for ``seconds`` more."""
        ...

    async def release(self, delivery: Delivery) -> None: ...

    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...

    async def check(self) -> None:
        """Raise ``TransportError`` unless the transport answers (readiness)."""
        ...

    async def depth(self) -> dict[str, int] | None:
        """Messages waiting and in flight in the queue and its dead-letter queue (see
        ``DepthProbe``); None when the transport has no queue of its own to count."""
        ...

    async def close(self) -> None: ...
