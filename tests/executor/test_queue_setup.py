"""``keeperhub-scheduler queue setup``: the queue and its dead-letter queue, with the redrive
policy and visibility timeout from the settings; run again, it changes nothing it should keep."""

from __future__ import annotations

import json
import secrets
from contextlib import AsyncExitStack

from keeperhub_scheduler.transport.sqs import open_client
from tests.support import sqs
from tests.support.processes import environment, run


async def test_queue_setup_creates_both_queues_with_the_redrive_policy_idempotently(
    localstack: str, database_url: str
) -> None:
    name = f"khs-setup-{secrets.token_hex(4)}"
    endpoint = sqs.endpoint_for(name)
    env = environment(
        database_url,
        endpoint,
        SCHEDULER_VISIBILITY_TIMEOUT_SECONDS="45",
        SCHEDULER_MAX_RECEIVE_COUNT="7",
    )
    try:
        first = run(["queue", "setup"], env)
        assert first.returncode == 0, first.stderr
        urls = json.loads(first.stdout)
        # LocalStack answers with URLs of its own host form; the names are ours.
        assert urls["queue_url"].endswith(f"/000000000000/{name}")
        assert urls["dlq_url"].endswith(f"/000000000000/{name}-dlq")

        async with AsyncExitStack() as stack:
            client = await open_client(endpoint, stack, pool=2)
            await client.send_message(QueueUrl=endpoint.queue_url, MessageBody="kept")
            second = run(["queue", "setup"], env)
            assert second.returncode == 0, second.stderr
            assert json.loads(second.stdout) == urls
            attributes = (
                await client.get_queue_attributes(
                    QueueUrl=endpoint.queue_url, AttributeNames=["All"]
                )
            )["Attributes"]
            dlq_attributes = (
                await client.get_queue_attributes(
                    QueueUrl=endpoint.dlq_url, AttributeNames=["QueueArn"]
                )
            )["Attributes"]

        assert attributes["VisibilityTimeout"] == "45"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq_attributes["QueueArn"] == urls["dlq_arn"]
        assert int(redrive["maxReceiveCount"]) == 7
        # The rerun kept what was queued.
        assert attributes["ApproximateNumberOfMessages"] == "1"
    finally:
        await sqs.delete_queues(endpoint)
