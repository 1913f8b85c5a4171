"""SQS's batch operations (delete, change visibility) fed one delivery at a time.

Each settle submits one entry; ``Coalescer`` gathers the entries of concurrent settles into one
``DeleteMessageBatch`` or ``ChangeMessageVisibilityBatch`` call (up to 10, SQS's limit), and this
module maps SQS's answer, which names refused entries by their batch Id, back to each entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from keeperhub_scheduler.coalesce import Coalescer
from keeperhub_scheduler.transport.base import TransportError

BATCH_LIMIT = 10  # SQS's own limit for every batch call, and for ReceiveMessage
BatchCall = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class Batcher:
    """``submit(entry)`` returns when the batch call that carried the entry answered for it, and
    raises ``TransportError`` when the call failed or SQS refused that entry."""

    def __init__(self, call: BatchCall, *, max_in_flight: int = 4, linger: float = 0.0) -> None:
        self._call = call  # takes the entries (with their batch Ids), returns SQS's answer
        self._coalescer: Coalescer[dict[str, Any], None] = Coalescer(
            self._send, limit=BATCH_LIMIT, max_in_flight=max_in_flight, linger=linger
        )

    async def submit(self, entry: dict[str, Any]) -> None:
        await self._coalescer.submit(entry)

    async def _send(self, batch: list[dict[str, Any]]) -> Sequence[TransportError | None]:
        entries = [entry | {"Id": str(index)} for index, entry in enumerate(batch)]
        try:
            answer = await self._call(entries)
        except TransportError:
            raise
        except Exception as error:
            raise TransportError(str(error)) from error
        refused = {item["Id"]: item for item in answer.get("Failed", [])}
        return [_refusal(refused.get(str(index))) for index in range(len(batch))]


def _refusal(item: dict[str, Any] | None) -> TransportError | None:
    if item is None:
        return None
    return TransportError(f"{item.get('Code', 'refused')}: {item.get('Message', '')}")
