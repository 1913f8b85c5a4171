"""Transports between dispatcher and executor, and the one place that picks one from the settings.

SQS (``sqs.SqsTransport``, production) when ``SQS_QUEUE_URL`` is set, else the database itself
(``database.DatabaseTransport``, the embedded mode). Everything else sees only the ``Transport``
protocol (``base``). A new transport is a module here that implements it, a branch in
``open_transport`` (and in ``set_up_queues`` if it has something to create) and its settings.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.transport.base import DepthProbe, Transport
from keeperhub_scheduler.transport.database import DatabaseTransport
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport, setup_queues


async def open_transport(settings: Settings, engine: AsyncEngine) -> Transport:
    """The transport the settings name, ready to use; ``close()`` it when done."""
    if settings.sqs_queue_url:
        endpoint = QueueEndpoint.from_settings(settings)
        return await SqsTransport(
            endpoint, send_concurrency=settings.scheduler_relay_concurrency
        ).start()
    return DatabaseTransport(engine, settings.signing_key_bytes)


def depth_probe(settings: Settings, engine: AsyncEngine) -> DepthProbe:
    """Asks the configured transport for its depth, opening it for just that (``status``)."""

    async def probe() -> dict[str, int] | None:
        transport = await open_transport(settings, engine)
        try:
            return await transport.depth()
        finally:
            await transport.close()

    return probe


async def set_up_queues(settings: Settings) -> dict[str, str]:
    """``queue setup``: create the queue and its dead-letter queue (safe to repeat)."""
    return await setup_queues(
        QueueEndpoint.from_settings(settings),
        visibility_timeout=settings.scheduler_visibility_timeout_seconds,
        max_receive_count=settings.scheduler_max_receive_count,
    )


__all__ = ["DepthProbe", "Transport", "depth_probe", "open_transport", "set_up_queues"]
