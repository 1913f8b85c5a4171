"""The relay: pending runs (the outbox) to the transport, then marked ``enqueued``.

A run is claimed for sending with a short lease (``relay_lease_until``) in its own transaction, so
several dispatchers never send the same run at once and no transaction stays open across a network
call. A crash after the claim's commit and before the send leaves the runs pending: when the lease
expires, the next pass sends them. A send that fails gives the lease back at once, so the runs go
out as soon as the queue answers again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.messages import RunMessage, encode
from keeperhub_scheduler.transport.base import OutgoingMessage, Transport

R = schedule_runs


@dataclass
class RelayResult:
    sent: int = 0
    failed: int = 0
    lags: list[float] = field(default_factory=list)  # enqueued - scheduled_for, in seconds

    def add(self, other: RelayResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.lags += other.lags


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        *,
        signing_key: bytes | None,
        batch_size: int = 500,
        lease: timedelta = timedelta(seconds=30),
        workers: int = 4,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.signing_key = signing_key
        self.batch_size = batch_size
        self.lease = lease
        self.workers = workers

    async def relay_all(self) -> RelayResult:
        """Send every claimable pending run, with ``workers`` batches in flight at once."""
        results = await asyncio.gather(*(self._worker() for _ in range(self.workers)))
        total = RelayResult()
        for result in results:
            total.add(result)
        return total

    async def _worker(self) -> RelayResult:
        total = RelayResult()
        while True:
            result = await self.relay_batch()
            total.add(result)
            # A short batch means the outbox is empty; a failure means wait for the backoff.
            if result.failed or result.sent < self.batch_size:
                return total

    async def relay_batch(self) -> RelayResult:
        rows = await self._claim()
        if not rows:
            return RelayResult()
        messages = [self._message(row) for row in rows]
        sent = await self.transport.send(messages)
        failed = [row.id for row in rows if row.id not in sent]
        enqueued_at = await self._mark(sent, failed)
        lags = [(enqueued_at - row.scheduled_for).total_seconds() for row in rows if row.id in sent]
        return RelayResult(sent=len(sent), failed=len(failed), lags=lags)

    async def _claim(self) -> list[Any]:
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            claimable = (
                select(R.c.id)
                .where(
                    R.c.status == "pending",
                    or_(R.c.relay_lease_until.is_(None), R.c.relay_lease_until < now),
                )
                .order_by(R.c.due_at)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            statement = (
                update(R)
                .where(R.c.id.in_(claimable.scalar_subquery()))
                .values(relay_lease_until=now + self.lease)
                .returning(R.c.id, R.c.schedule_id, R.c.workflow_id, R.c.scheduled_for)
            )
            return list((await connection.execute(statement)).all())

    def _message(self, row: Any) -> OutgoingMessage:
        body, attributes = encode(
            RunMessage(row.workflow_id, row.schedule_id, row.scheduled_for, row.id),
            self.signing_key,
        )
        return OutgoingMessage(row.id, body, attributes)

    async def _mark(self, sent: set[str], failed: list[str]) -> datetime:
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            if sent:
                # Only still-pending ones: a fast executor may already have claimed the run.
                await connection.execute(
                    update(R)
                    .where(R.c.id.in_(sent), R.c.status == "pending")
                    .values(status="enqueued", enqueued_at=now, relay_lease_until=None)
                )
            if failed:
                await connection.execute(
                    update(R).where(R.c.id.in_(failed)).values(relay_lease_until=None)
                )
            return now


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
