"""The relay's database side: which pending runs to send, and what became of them.

A run is sent by exactly one dispatcher at a time thanks to a short lease
(``relay_lease_until``). The claim gives its own new runs that lease as it inserts them and hands
them straight to the sender (``stream.RelayStream``); everything else that is pending and due
(runs of a dispatcher that crashed between its commit and its send, runs whose send failed,
manual and backfill runs) is leased here by ``lease_leftovers``, in its own short transaction, so
no transaction stays open across a network call. A crash after the claim's commit and before the
send leaves the runs pending: when the lease expires, the next pass sends them. A send that fails
gives the lease back at once (``release``), so the runs go out as soon as the queue answers again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.runs import RunRef

R = schedule_runs


async def lease_leftovers(engine: AsyncEngine, limit: int, lease: timedelta) -> list[RunRef]:
    """Lease up to ``limit`` pending, due runs that nobody holds a live lease on."""
    async with engine.begin() as connection:
        now = await database_now(connection)
        claimable = (
            select(R.c.id)
            .where(
                R.c.status == "pending",
                R.c.due_at <= now,
                or_(R.c.relay_lease_until.is_(None), R.c.relay_lease_until < now),
            )
            .order_by(R.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(R)
            .where(R.c.id.in_(claimable.scalar_subquery()))
            .values(relay_lease_until=now + lease)
            .returning(R.c.id, R.c.schedule_id, R.c.workflow_id, R.c.scheduled_for)
        )
        rows = (await connection.execute(statement)).all()
    return [
        RunRef(
            run_id=row.id,
            workflow_id=row.workflow_id,
            schedule_id=row.schedule_id,
            scheduled_for=row.scheduled_for,
        )
        for row in rows
    ]


# PostgreSQL: the ids travel as one binary array (%b), not one bind parameter each.
_PG_MARK_ENQUEUED = """
UPDATE schedule_runs SET status = 'enqueued', enqueued_at = now(), relay_lease_until = NULL
WHERE id = ANY(%(ids)b) AND status = 'pending'
RETURNING scheduled_for, enqueued_at
"""
_PG_RELEASE = """
UPDATE schedule_runs SET relay_lease_until = NULL
WHERE id = ANY(%(ids)b) AND status = 'pending'
"""


async def mark_enqueued(engine: AsyncEngine, run_ids: Sequence[str]) -> list[float]:
    """Record the runs as handed to the transport; return each one's lag in seconds.

    Only still-pending ones change: a fast executor may already have claimed the run.
    """
    if not run_ids:
        return []
    async with engine.begin() as connection:
        result: Any
        if connection.dialect.name == "postgresql":
            result = await connection.exec_driver_sql(_PG_MARK_ENQUEUED, {"ids": list(run_ids)})
        else:
            result = await _portable_mark(connection, run_ids)
        rows: Sequence[Any] = result.all()
    return [(_utc(row[1]) - _utc(row[0])).total_seconds() for row in rows]


async def _portable_mark(connection: AsyncConnection, run_ids: Sequence[str]) -> Any:
    now = await database_now(connection)
    return await connection.execute(
        update(R)
        .where(R.c.id.in_(run_ids), R.c.status == "pending")
        .values(status="enqueued", enqueued_at=now, relay_lease_until=None)
        .returning(R.c.scheduled_for, R.c.enqueued_at)
    )


async def release(engine: AsyncEngine, run_ids: Sequence[str]) -> None:
    """Give the runs' leases back: they were not sent, and any pass may send them now."""
    if not run_ids:
        return
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(_PG_RELEASE, {"ids": list(run_ids)})
        else:
            await connection.execute(
                update(R)
                .where(R.c.id.in_(run_ids), R.c.status == "pending")
                .values(relay_lease_until=None)
            )


async def count_pending(engine: AsyncEngine) -> tuple[int, int]:
    """(all pending runs, those no live lease covers): the outbox, and what is left of it."""
    async with engine.connect() as connection:
        now = await database_now(connection)
        unleased = or_(R.c.relay_lease_until.is_(None), R.c.relay_lease_until < now)
        statement = select(func.count(), func.count().filter(unleased & (R.c.due_at <= now))).where(
            R.c.status == "pending"
        )
        total, claimable = (await connection.execute(statement)).one()
    return int(total), int(claimable)


def _utc(value: datetime) -> datetime:
    # Raw PostgreSQL rows come in the session's zone, SQLite's naive; both mean UTC instants.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def sweep_stale_runs(
    engine: AsyncEngine, *, stale_enqueued: timedelta, lease_grace: timedelta
) -> int:
    """Put runs that lost their message back in the outbox; return how many.

    The database, not the queue, is the record of what must run. A message can be lost to an
    operator purging the queue, to a redelivery acknowledged while its run was under a live
    lease, or to SQS's own redrive; the run then sits ``enqueued``, ``running`` with a lapsed
    lease, or ``retrying`` past its attempt time. Sending it again is safe: the executor's claim
    lets exactly one delivery of a run execute.
    """
    async with engine.begin() as connection:
        now = await database_now(connection)
        statement = (
            update(R)
            .where(
                R.c.status.in_(("enqueued", "running", "retrying")),
                or_(
                    (R.c.status == "enqueued") & (R.c.enqueued_at < now - stale_enqueued),
                    (R.c.status == "running") & (R.c.lease_until < now - lease_grace),
                    (R.c.status == "retrying") & (R.c.next_attempt_at < now - lease_grace),
                ),
            )
            .values(status="pending", relay_lease_until=None)
        )
        return int((await connection.execute(statement)).rowcount)
