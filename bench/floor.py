"""The floor: the least CPU a run can cost with the executor's clients, run as its own process.

``bench/execute.py`` measures this process's CPU per run beside the executor's. It does only the
unavoidable work of a run, with the same libraries the executor uses, each call batched per
receive as the executor batches them:

* receive up to ten messages (aiobotocore ``receive_message``) and read each body (``json``);
* claim their run rows (SQLAlchemy on psycopg, one autocommitted UPDATE ... RETURNING over an
  array of ids);
* call KeeperHub for each claimed run (one pooled aiohttp session, the same request body and
  headers as the executor's), reading the answer;
* record the outcomes (one UPDATE over arrays) and delete the messages (``delete_message_batch``).

What it leaves out is what the executor does beyond that: the message's signature check, the
switched-off and overlap flags of the claim, the schedule's last status and run count in the
record, heartbeats, retries and their backoff, metrics and the per-run log line. So the floor is
a lower bound, not a peer: the executor's target is to stay within 1.3x of it.

    python bench/floor.py    # reads the executor's environment (DATABASE_URL, SQS_QUEUE_URL,
                             # AWS_ENDPOINT_URL, KEEPERHUB_URL, ...); runs until SIGTERM
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

LOOPS = 5  # five receives of ten in flight: the executor's 50 calls at a time
VISIBILITY = 30

CLAIM = (
    "UPDATE schedule_runs SET status = 'running', attempts = attempts + 1,"
    " lease_until = now() + interval '30 seconds', started_at = coalesce(started_at, now())"
    " WHERE id = ANY(%(ids)s) AND status IN ('pending', 'enqueued')"
    " RETURNING id, workflow_id, schedule_id, attempts"
)
RECORD = (
    "UPDATE schedule_runs AS r SET status = m.status, http_status = m.http_status,"
    " finished_at = now(), lease_until = NULL"
    " FROM unnest(%(ids)s::text[], %(attempts)s::int[], %(statuses)s::text[],"
    " %(http)s::int[]) AS m(id, attempt, status, http_status)"
    " WHERE r.id = m.id AND r.status = 'running' AND r.attempts = m.attempt"
)


class Floor:
    def __init__(self, sqs: Any, engine: AsyncEngine, http: aiohttp.ClientSession) -> None:
        self.sqs = sqs
        self.engine = engine
        self.http = http
        self.queue_url = os.environ["SQS_QUEUE_URL"]
        self.keeperhub = os.environ["KEEPERHUB_URL"].rstrip("/")
        self.service_key = os.environ.get("SCHEDULER_SERVICE_API_KEY", "")

    async def loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            answer = await self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                VisibilityTimeout=VISIBILITY, MessageAttributeNames=["All"],
            )  # fmt: skip
            messages = answer.get("Messages", [])
            if messages:
                await self.runs(messages)

    async def runs(self, messages: list[dict[str, Any]]) -> None:
        bodies = {}
        for message in messages:
            body = json.loads(message["Body"])
            bodies[body["runId"]] = body
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            claimed = (await connection.exec_driver_sql(CLAIM, {"ids": list(bodies)})).all()
        statuses = await asyncio.gather(*(self.call(row.id, bodies[row.id]) for row in claimed))
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql(RECORD, {
                "ids": [row.id for row in claimed],
                "attempts": [row.attempts for row in claimed],
                "statuses": ["succeeded" if 200 <= s < 300 else "failed" for s in statuses],
                "http": statuses,
            })  # fmt: skip
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ]
        await self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    async def call(self, run_id: str, message: dict[str, str]) -> int:
        body = {
            "executionId": run_id,
            "input": {
                "triggerType": message["triggerType"],
                "scheduleId": message["scheduleId"],
                "triggerTime": message["triggerTime"],
            },
        }
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": run_id,
            "X-Service-Key": self.service_key,
        }
        url = f"{self.keeperhub}/api/workflow/{message['workflowId']}/execute"
        async with self.http.post(
            url, data=json.dumps(body).encode(), headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            return response.status


async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_async_engine(url, pool_size=LOOPS * 2)
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=0)
    session = get_session()
    async with (
        session.create_client(
            "sqs", region_name=os.environ.get("AWS_REGION", "us-east-1"),
            endpoint_url=os.environ["AWS_ENDPOINT_URL"],
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        ) as sqs,
        aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        ) as http,
    ):  # fmt: skip
        floor = Floor(sqs, engine, http)
        await asyncio.gather(*(floor.loop(stop) for _ in range(LOOPS)))
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
