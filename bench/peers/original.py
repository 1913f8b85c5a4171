"""The original dispatcher's algorithm, re-created as its description and history tell it.

KeeperHub's ``scripts/schedule-dispatcher.ts`` ran once a minute: it read every enabled schedule,
matched each cron expression against the current minute, and for each match sent one SQS
``SendMessage`` and updated the schedule's ``last_run_at``/``next_run_at``, one after the other.
Here the same steps run on the same PostgreSQL and LocalStack with the same client library as
ours (aiobotocore) and ``croniter`` standing in for the JavaScript cron-parser.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
from croniter import croniter

from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client
from peers.common import message, sqs_attributes


def matches_current_minute(expression: str, zone: str, now: datetime) -> bool:
    minute = now.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
    return bool(croniter.match(expression, minute))


async def original_tick(url: str, queue: QueueEndpoint) -> int:
    """One tick of the original dispatcher; returns how many messages it sent."""
    now = datetime.now(UTC)
    sent = 0
    async with AsyncExitStack() as stack:
        client = await open_client(queue, stack, pool=16)
        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        stack.push_async_callback(connection.close)
        rows = await (
            await connection.execute(
                "SELECT id, cron_expression, timezone FROM workflow_schedules WHERE enabled = true"
            )
        ).fetchall()
        for schedule_id, expression, zone in rows:
            if not matches_current_minute(expression, zone, now):
                continue
            body, attributes = message(schedule_id)  # its workflow id is derived from the id
            await client.send_message(
                QueueUrl=queue.queue_url,
                MessageBody=body,
                MessageAttributes=sqs_attributes(attributes),
            )
            following = croniter(expression, now.astimezone(ZoneInfo(zone))).get_next(datetime)
            await connection.execute(
                "UPDATE workflow_schedules SET last_run_at = %s, next_run_at = %s,"
                " updated_at = now() WHERE id = %s",
                (now, following, schedule_id),
            )
            sent += 1
    return sent
