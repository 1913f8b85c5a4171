"""Builders for the executor's tests: rows in the database, messages on the queue, and an
executor running in this event loop against a real PostgreSQL, LocalStack and stand-in."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import load_settings
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.executor.worker import Executor
from keeperhub_scheduler.management.service import new_schedule_id
from keeperhub_scheduler.processes import build_executor, opened
from keeperhub_scheduler.runs import FINISHED, RunRef, new_run_id
from keeperhub_scheduler.transport.base import OutgoingMessage, Transport
from keeperhub_scheduler.transport.messages import encode
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.support.sqs import queue_counts

SIGNING_KEY = b"signing-key"
SERVICE_KEY = "service-key"
FIRST_OCCURRENCE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
R = schedule_runs
S = workflow_schedules


@dataclass(frozen=True)
class Schedule:
    id: str
    workflow_id: str


async def add_schedule(
    engine: AsyncEngine,
    *,
    overlap: str = "allow",
    enabled: bool = True,
    workflow_enabled: bool = True,
    run_count: str | None = "0",
    workflow_id: str | None = None,
) -> Schedule:
    """A workflow and its schedule; ``next_run_at`` is NULL, so no dispatcher would fire it."""
    schedule = Schedule(new_schedule_id(), workflow_id or f"wf_{secrets.token_hex(6)}")
    async with engine.begin() as connection:
        await connection.execute(
            insert(workflows).values(id=schedule.workflow_id, name="test", enabled=workflow_enabled)
        )
        await connection.execute(
            insert(S).values(
                id=schedule.id,
                workflow_id=schedule.workflow_id,
                cron_expression="* * * * *",
                enabled=enabled,
                overlap_policy=overlap,
                run_count=run_count,
            )
        )
    return schedule


async def add_runs(
    engine: AsyncEngine,
    schedule: Schedule,
    count: int = 1,
    *,
    status: str = "pending",
    first: datetime = FIRST_OCCURRENCE,
    workflow_id: str | None = None,
) -> list[str]:
    """``count`` runs of ``schedule``, one a minute from ``first``; their ids, in order."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": new_run_id(),
            "schedule_id": schedule.id,
            "workflow_id": workflow_id or schedule.workflow_id,
            "kind": "schedule",
            "scheduled_for": first + timedelta(minutes=index),
            "due_at": first + timedelta(minutes=index),
            "status": status,
            "created_at": now,
        }
        for index in range(count)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(R), rows)
    return [row["id"] for row in rows]


async def relay(engine: AsyncEngine, transport: Transport) -> int:
    """Send every pending run to the queue and mark it enqueued, as the dispatcher's relay does
    (built here from ``encode`` and ``send`` so these tests do not depend on the relay's API)."""
    async with engine.connect() as connection:
        pending = (
            await connection.execute(
                select(R.c.id, R.c.workflow_id, R.c.schedule_id, R.c.scheduled_for).where(
                    R.c.status == "pending"
                )
            )
        ).all()
    outgoing = []
    for row in pending:
        run = RunRef(
            run_id=row.id,
            workflow_id=row.workflow_id,
            schedule_id=row.schedule_id,
            scheduled_for=row.scheduled_for,
        )
        body, attributes = encode(run, SIGNING_KEY)
        outgoing.append(OutgoingMessage(row.id, body, attributes))
    sent = await transport.send(outgoing)
    assert sent == {message.run_id for message in outgoing}
    async with engine.begin() as connection:
        await connection.execute(
            update(R)
            .where(R.c.id.in_(sent), R.c.status == "pending")
            .values(status="enqueued", enqueued_at=datetime.now(UTC))
        )
    return len(sent)


async def send_raw(transport: Transport, body: str, attributes: dict[str, str]) -> None:
    accepted = await transport.send([OutgoingMessage("raw", body, attributes)])
    assert accepted == {"raw"}


async def send_run(
    transport: Transport, engine: AsyncEngine, run_id: str, signing_key: bytes | None = SIGNING_KEY
) -> None:
    """Another message for an existing run (a duplicate, or a redelivery after a purge)."""
    row = await run_row(engine, run_id)
    run = RunRef(
        run_id=run_id,
        workflow_id=row["workflow_id"],
        schedule_id=row["schedule_id"],
        scheduled_for=row["scheduled_for"],
    )
    body, attributes = encode(run, signing_key)
    await send_raw(transport, body, attributes)


async def run_row(engine: AsyncEngine, run_id: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        row = (await connection.execute(select(R).where(R.c.id == run_id))).one()
    return dict(row._mapping)


async def schedule_row(engine: AsyncEngine, schedule_id: str) -> dict[str, Any]:
    async with engine.connect() as connection:
        row = (await connection.execute(select(S).where(S.c.id == schedule_id))).one()
    return dict(row._mapping)


async def set_run(engine: AsyncEngine, run_id: str, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(R).where(R.c.id == run_id).values(**values))


async def wait_for_runs(
    engine: AsyncEngine,
    run_ids: Iterable[str],
    statuses: Iterable[str] = FINISHED,
    timeout: float = 60.0,
) -> dict[str, dict[str, Any]]:
    """Poll until every run has one of ``statuses``; fail with their states if it takes longer."""
    wanted, ids = set(statuses), list(run_ids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(R).where(R.c.id.in_(ids)))).all()
        found = {row.id: dict(row._mapping) for row in rows}
        if len(found) == len(ids) and all(row["status"] in wanted for row in found.values()):
            return found
        if loop.time() > deadline:
            states = sorted({row["status"] for row in found.values()})
            raise AssertionError(f"runs did not reach {sorted(wanted)} in time; they are {states}")
        await asyncio.sleep(0.1)


async def wait_until(condition: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll an async or plain predicate until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def executor_settings(
    database_url: str, queue: QueueEndpoint, keeperhub_url: str, **overrides: Any
) -> dict[str, Any]:
    """Settings for an executor under test: short long polls so that each test stops fast."""
    return {
        "database_url": database_url,
        "sqs_queue_url": queue.queue_url,
        "scheduler_dlq_url": queue.dlq_url,
        "aws_endpoint_url": queue.endpoint_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "keeperhub_url": keeperhub_url,
        "scheduler_service_api_key": SERVICE_KEY,
        "scheduler_signing_key": SIGNING_KEY.decode(),
        "scheduler_receive_wait_seconds": 1,
        "scheduler_health_port": 0,
        "scheduler_retry_base_seconds": 1.0,
        "scheduler_retry_max_seconds": 2.0,
    } | overrides


@asynccontextmanager
async def running_executor(
    database_url: str, queue: QueueEndpoint, keeperhub_url: str, **overrides: Any
) -> AsyncIterator[Executor]:
    """An executor in this event loop; drained (as on SIGTERM) when the block ends."""
    settings = load_settings(**executor_settings(database_url, queue, keeperhub_url, **overrides))
    async with opened(settings, pre_ping=False, overflow=0) as (
        engine,
        transport,
    ):  # as run_executor
        executor, keeperhub = build_executor(settings, engine, transport)
        stop = asyncio.Event()
        task = asyncio.create_task(executor.run(stop))
        try:
            yield executor
        finally:
            stop.set()
            await task
            await keeperhub.close()


async def wait_until_settled(executor: Executor, queue: QueueEndpoint, timeout: float = 30) -> None:
    """Until the main queue holds nothing (visible or in flight) and the executor no delivery."""

    async def settled() -> bool:
        return executor.busy == 0 and await queue_counts(queue) == (0, 0)

    await wait_until(settled, timeout, "the queue to empty and the executor to go idle")
