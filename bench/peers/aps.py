"""APScheduler 3 as the Python peer: one job per schedule in its SQLAlchemyJobStore on the same
PostgreSQL, each job sending the same SQS message as ours.

The jobs are added while the scheduler is paused (not measured), all due at the same instant
(the mix of patterns and zones every party gets); ``resume`` starts the clock, and it stops
when the last job's message was accepted by the queue.
The store is APScheduler's own (one pickled row per job, one UPDATE per run); the executor is its
AsyncIOExecutor, so the sends overlap as much as APScheduler lets them.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client
from peers.common import message, mixed_timings, sqs_attributes


class _Sender:
    """What the job function needs, set before the run (jobs are stored by reference)."""

    client: Any = None
    queue_url = ""
    sent = 0
    done = asyncio.Event()
    expected = 0


async def send_job(schedule_id: str) -> None:
    body, attributes = message(schedule_id)
    await _Sender.client.send_message(
        QueueUrl=_Sender.queue_url, MessageBody=body, MessageAttributes=sqs_attributes(attributes)
    )
    _Sender.sent += 1
    if _Sender.sent >= _Sender.expected:
        _Sender.done.set()


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


async def apscheduler_run(url: str, queue: QueueEndpoint, jobs: int, at: datetime) -> float:
    """Seconds from resume until every job's message was sent; the jobs are the mix of
    ``mixed_timings``, cycled, all due at ``at``."""
    async with AsyncExitStack() as stack:
        _Sender.client = await open_client(queue, stack, pool=16)
        _Sender.queue_url = queue.queue_url
        _Sender.sent = 0
        _Sender.expected = jobs
        _Sender.done = asyncio.Event()
        scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=sync_url(url), tablename="aps_jobs")},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        scheduler.start(paused=True)
        triggers = [
            CronTrigger.from_crontab(expression, timezone=zone)
            for expression, zone in mixed_timings(at)
        ]
        for n in range(1, jobs + 1):
            trigger = triggers[n % len(triggers)]
            scheduler.add_job(send_job, trigger, args=[f"s{n}"], id=f"s{n}", next_run_time=at)
        started = time.perf_counter()
        scheduler.resume()
        await _Sender.done.wait()
        seconds = time.perf_counter() - started
        scheduler.shutdown(wait=False)
    return seconds
