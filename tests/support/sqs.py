"""Real LocalStack queues for tests: a fresh queue and DLQ per test, deleted afterwards."""

from __future__ import annotations

import json
import os
import secrets
import urllib.request
from contextlib import AsyncExitStack, suppress
from typing import Any

from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client, setup_queues

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
ACCOUNT_URL = f"{ENDPOINT}/000000000000"


def check_localstack() -> str | None:
    """None when LocalStack's SQS answers, else a message that says how to start it."""
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=3) as answer:
            services = json.load(answer).get("services", {})
        if services.get("sqs") in ("available", "running"):
            return None
        problem = f"SQS is {services.get('sqs')!r}"
    except OSError as error:
        problem = str(error)
    return (
        f"LocalStack is not answering at {ENDPOINT} ({problem}); start it with "
        "`scripts/localstack.sh start` (`make test` starts it for you)"
    )


def endpoint_for(name: str, *, visibility: int = 30) -> QueueEndpoint:
    return QueueEndpoint(
        queue_url=f"{ACCOUNT_URL}/{name}",
        dlq_url=f"{ACCOUNT_URL}/{name}-dlq",
        region="us-east-1",
        endpoint_url=ENDPOINT,
        access_key_id="test",
        secret_access_key="test",
    )


async def create_queues(
    prefix: str = "khs", *, visibility: int = 30, max_receive: int = 10
) -> QueueEndpoint:
    endpoint = endpoint_for(f"{prefix}-{secrets.token_hex(4)}")
    await setup_queues(endpoint, visibility_timeout=visibility, max_receive_count=max_receive)
    return endpoint


async def delete_queues(endpoint: QueueEndpoint) -> None:
    async with AsyncExitStack() as stack:
        client = await open_client(endpoint, stack, pool=2)
        for url in (endpoint.queue_url, endpoint.dlq_url):
            with suppress(Exception):
                await client.delete_queue(QueueUrl=url)


async def queue_counts(endpoint: QueueEndpoint, url: str | None = None) -> tuple[int, int]:
    """(visible, in flight) of the queue (or of ``url``)."""
    async with AsyncExitStack() as stack:
        client = await open_client(endpoint, stack, pool=2)
        answer = await client.get_queue_attributes(
            QueueUrl=url or endpoint.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    values = answer["Attributes"]
    return int(values["ApproximateNumberOfMessages"]), int(
        values["ApproximateNumberOfMessagesNotVisible"]
    )


async def receive_all(
    endpoint: QueueEndpoint, url: str, *, expect: int, wait: float = 10.0
) -> list[dict[str, Any]]:
    """Receive (and delete) messages from ``url`` until ``expect`` arrived or ``wait`` passed."""
    import asyncio

    messages: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    async with AsyncExitStack() as stack:
        client = await open_client(endpoint, stack, pool=2)
        while len(messages) < expect and loop.time() < deadline:
            answer = await client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
            )
            for message in answer.get("Messages", []):
                messages.append(message)
                await client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages
