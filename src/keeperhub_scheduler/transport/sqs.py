"""SQS (AWS or LocalStack) through aiobotocore: the production transport, and queue setup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from keeperhub_scheduler.config import Settings, require
from keeperhub_scheduler.transport.base import Delivery, OutgoingMessage, TransportError
from keeperhub_scheduler.transport.batching import BATCH_LIMIT, BatchCall, Batcher
from keeperhub_scheduler.transport.dlq import DeadLetterCopy, dead_letter_copy, minimal_copy

# A SendMessageBatch answers in milliseconds. One that hangs (a frozen or black-holed endpoint)
# is given up after this long, so that a dispatcher pass never waits on it for the client's
# read timeout (sized for 20 s long polls) times its retries, while occurrences come due.
SEND_TIMEOUT_SECONDS = 10.0
MAX_VISIBILITY_SECONDS = 43_200  # 12 hours, SQS's ceiling
DELETE_LINGER_SECONDS = 0.005  # how long a batch of deletes waits for one more (coalesce)


@dataclass(frozen=True)
class QueueEndpoint:
    """Where and how to reach SQS; built from ``Settings`` so secrets stay in SecretStr there."""

    queue_url: str
    dlq_url: str | None
    region: str
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueEndpoint:
        return cls(
            queue_url=require(settings.sqs_queue_url, "SQS_QUEUE_URL", "the SQS transport"),
            dlq_url=settings.dlq_url,
            region=settings.aws_region,
            endpoint_url=str(settings.aws_endpoint_url).rstrip("/")
            if settings.aws_endpoint_url
            else None,
            access_key_id=_reveal(settings.aws_access_key_id),
            secret_access_key=_reveal(settings.aws_secret_access_key),
        )


def _reveal(secret: Any) -> str | None:
    return secret.get_secret_value() if secret is not None else None


async def open_client(endpoint: QueueEndpoint, stack: AsyncExitStack, pool: int = 64) -> Any:
    config = AioConfig(
        max_pool_connections=pool,
        connect_timeout=5,
        read_timeout=30,  # above the 20 s long poll
        retries={"max_attempts": 2, "mode": "standard"},
    )
    session = get_session()
    return await stack.enter_async_context(
        session.create_client(
            "sqs",
            region_name=endpoint.region,
            endpoint_url=endpoint.endpoint_url,
            aws_access_key_id=endpoint.access_key_id,
            aws_secret_access_key=endpoint.secret_access_key,
            config=config,
        )
    )


class SqsTransport:
    """One aiobotocore client shared by every call of the process."""

    batch_size = BATCH_LIMIT
    max_delay_seconds = MAX_VISIBILITY_SECONDS
    mark_within_seconds = 0.25

    def __init__(
        self,
        endpoint: QueueEndpoint,
        *,
        send_concurrency: int = 16,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.endpoint = endpoint
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._send_slots = asyncio.Semaphore(send_concurrency)
        # Deletes and visibility changes of many deliveries share batch calls (see batching).
        # Deletes follow outcomes, which arrive milliseconds apart: a moment's wait fills a batch.
        self._deletes = Batcher(
            self._batch_call("delete_message_batch"), linger=DELETE_LINGER_SECONDS
        )
        self._visibility = Batcher(self._batch_call("change_message_visibility_batch"))
        self._send_timeout = send_timeout

    async def start(self) -> SqsTransport:
        self._client = await open_client(self.endpoint, self._stack)
        return self

    async def close(self) -> None:
        await self._stack.aclose()

    async def send(self, messages: Sequence[OutgoingMessage]) -> set[str]:
        batches = [messages[i : i + BATCH_LIMIT] for i in range(0, len(messages), BATCH_LIMIT)]
        results = await asyncio.gather(*(self._send_batch(batch) for batch in batches))
        return set().union(*results) if results else set()

    async def _send_batch(self, batch: Sequence[OutgoingMessage]) -> set[str]:
        entries = [
            {
                "Id": message.run_id,
                "MessageBody": message.body,
                "MessageAttributes": {
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in message.attributes.items()
                },
            }
            for message in batch
        ]
        async with self._send_slots:
            try:
                async with asyncio.timeout(self._send_timeout):
                    answer = await self._client.send_message_batch(
                        QueueUrl=self.endpoint.queue_url, Entries=entries
                    )
            except (TimeoutError, BotoCoreError, ClientError, OSError):
                # The runs stay pending; the relay backs off and tries again. After a timeout
                # the queue may still have taken them: the executor drops the second delivery.
                return set()
        return {entry["Id"] for entry in answer.get("Successful", [])}

    async def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int | None = None
    ) -> list[Delivery]:
        visibility = {} if visibility_seconds is None else {"VisibilityTimeout": visibility_seconds}
        try:
            answer = await self._client.receive_message(
                QueueUrl=self.endpoint.queue_url,
                MaxNumberOfMessages=min(max_messages, BATCH_LIMIT),
                WaitTimeSeconds=wait_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
                **visibility,
            )
        except (TimeoutError, BotoCoreError, ClientError, OSError) as error:
            raise TransportError(f"receive failed: {error}") from error
        return [_delivery(message) for message in answer.get("Messages", [])]

    async def delete(self, delivery: Delivery) -> None:
        await self._deletes.submit({"ReceiptHandle": delivery.handle})

    async def retry_later(self, delivery: Delivery, delay_seconds: int) -> None:
        await self.extend(delivery, delay_seconds)

    async def extend(self, delivery: Delivery, seconds: int) -> None:
        timeout = max(0, min(seconds, MAX_VISIBILITY_SECONDS))
        await self._visibility.submit(
            {"ReceiptHandle": delivery.handle, "VisibilityTimeout": timeout}
        )

    def _batch_call(self, operation: str) -> BatchCall:
        async def call(entries: list[dict[str, Any]]) -> Any:
            return await self._call(operation, QueueUrl=self.endpoint.queue_url, Entries=entries)

        return call

    async def release(self, delivery: Delivery) -> None:
        await self.extend(delivery, 0)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Copy the message to the DLQ with the reason (cut to SQS's limits, ``dlq``), then
        delete it from the main queue. A copy SQS refuses is tried once more as the bare
        reason, so a message we know must not run never loops until the redrive takes it."""
        dlq_url = self.endpoint.dlq_url
        if dlq_url is None:
            raise TransportError("no dead-letter queue configured (SCHEDULER_DLQ_URL)")
        try:
            await self._send_copy(dlq_url, dead_letter_copy(delivery, reason))
        except TransportError as error:
            if not _refused(error):
                raise
            await self._send_copy(dlq_url, minimal_copy(delivery, reason))
        await self.delete(delivery)

    async def _send_copy(self, dlq_url: str, copy: DeadLetterCopy) -> None:
        await self._call(
            "send_message",
            QueueUrl=dlq_url,
            MessageBody=copy.body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in copy.attributes.items()
            },
        )

    async def check(self) -> None:
        await self._call(
            "get_queue_attributes",
            QueueUrl=self.endpoint.queue_url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )

    async def depth(self) -> dict[str, int]:
        """Visible and in-flight messages of the main queue and the DLQ (status, metrics)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        depths: dict[str, int] = {}
        for label, url in (("queue", self.endpoint.queue_url), ("dlq", self.endpoint.dlq_url)):
            if url is None:
                continue
            answer = await self._call("get_queue_attributes", QueueUrl=url, AttributeNames=names)
            values = answer.get("Attributes", {})
            depths[f"{label}_visible"] = int(values.get(names[0], 0))
            depths[f"{label}_in_flight"] = int(values.get(names[1], 0))
        return depths

    async def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return await getattr(self._client, operation)(**arguments)
        except (TimeoutError, BotoCoreError, ClientError, OSError) as error:
            raise TransportError(f"{operation} failed: {error}") from error


def _refused(error: TransportError) -> bool:
    """Whether SQS answered and refused the request (not: could not be reached)."""
    return isinstance(error.__cause__, ClientError)


def _delivery(message: dict[str, Any]) -> Delivery:
    attributes: dict[str, str] = {}
    unreadable: list[str] = []
    for name, value in message.get("MessageAttributes", {}).items():
        if str(value.get("DataType", "")).startswith("String") and "StringValue" in value:
            attributes[name] = value["StringValue"]
        else:
            unreadable.append(name)  # Binary or Number: none of ours is, so the message is not
    count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    return Delivery(
        body=message.get("Body", ""),
        attributes=attributes,
        handle=message["ReceiptHandle"],
        receive_count=count,
        message_id=message.get("MessageId", ""),
        unreadable_attributes=tuple(unreadable),
    )


async def setup_queues(
    endpoint: QueueEndpoint, *, visibility_timeout: int, max_receive_count: int
) -> dict[str, str]:
    """Create the queue and its DLQ with a redrive policy; safe to run any number of times.

    Names come from the URLs' last path segment. Existing queues keep their messages; their
    attributes are set to what we need.
    """
    async with AsyncExitStack() as stack:
        client = await open_client(endpoint, stack, pool=4)
        dlq_url = endpoint.dlq_url or f"{endpoint.queue_url}-dlq"
        dlq = await _create_queue(client, _queue_name(dlq_url))
        await client.set_queue_attributes(
            QueueUrl=dlq, Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)}
        )
        dlq_arn = (await client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        queue = await _create_queue(client, _queue_name(endpoint.queue_url))
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        await client.set_queue_attributes(
            QueueUrl=queue,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        )
        return {"queue_url": queue, "dlq_url": dlq, "dlq_arn": dlq_arn}


async def _create_queue(client: Any, name: str) -> str:
    return str((await client.create_queue(QueueName=name))["QueueUrl"])


def _queue_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise TransportError(f"cannot find a queue name in {url!r}")
    return name
