"""The original dispatcher's per-fire work, re-created step by step from its code's behaviour.

KeeperHub's ``scripts/schedule-dispatcher.ts`` runs once a minute (a CronJob). One tick:

1. one query reads every enabled schedule (id, workflow id, cron expression, zone);
2. for each row, the expression is parsed in the row's zone (``cron-parser``) and matched against
   the current minute;
3. for each match, one message (``workflowId``, ``scheduleId``, ``triggerTime``, ``triggerType``,
   no run id, no signature) goes out in its own SQS ``SendMessage``, awaited before the next one.

That is all it does per fire. Where the spec and the code differ: the spec says the dispatcher
"updates ``next_run_at`` and ``last_run_at``"; the code writes nothing back (DESIGN.md: "never
written by it"), so this peer does no per-fire UPDATE either. An earlier version of this peer did
one (autocommitted, through our triggers: a WAL flush per fire), which made the original look
slower than it is. Here the same steps run on the same PostgreSQL and LocalStack with the same
client library as ours (aiobotocore), ``croniter`` standing in for the JavaScript cron-parser.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg
from croniter import croniter

from keeperhub_scheduler.transport.messages import LegacyMessage, encode
from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client
from peers.common import sqs_attributes


def matches_current_minute(expression: str, zone: str, now: datetime) -> bool:
    minute = now.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
    return bool(croniter.match(expression, minute))


async def original_tick(url: str, queue: QueueEndpoint, now: datetime) -> int:
    """One tick of the original dispatcher at ``now``; returns how many messages it sent."""
    sent = 0
    async with AsyncExitStack() as stack:
        client = await open_client(queue, stack, pool=16)
        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        stack.push_async_callback(connection.close)
        rows = await (
            await connection.execute(
                "SELECT id, workflow_id, cron_expression, timezone"
                " FROM workflow_schedules WHERE enabled = true"
            )
        ).fetchall()
        for schedule_id, workflow_id, expression, zone in rows:
            if not matches_current_minute(expression, zone, now):
                continue
            occurrence = LegacyMessage(
                workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=now
            )
            body, attributes = encode(occurrence, None)
            await client.send_message(
                QueueUrl=queue.queue_url,
                MessageBody=body,
                MessageAttributes=sqs_attributes(attributes),
            )
            sent += 1
    return sent
