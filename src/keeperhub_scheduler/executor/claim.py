"""Claiming a run for one attempt: which delivery may execute it, and whether it may run at all.

A claim is a conditional UPDATE to ``running`` under a lease. It succeeds for a run that is
waiting (pending, enqueued, or retrying and due) or whose lease has lapsed (its executor died);
any other delivery of the run finds it running under a live lease, or finished, and is refused.
The claim also re-checks that the schedule and its workflow are still enabled (and the schedule
not paused), and applies the schedule's overlap policy; a run that may not run is ``skipped``
with the reason.

On PostgreSQL the common case is one autocommitted statement: the claim, with the flags joined
in and the clock read from ``now()``; ``Claims`` sends the claims of concurrent deliveries (the
ten of one receive, say) as one such statement over arrays of run ids. Runs of schedules whose
overlap policy is ``skip`` take the transactional path, where the schedule row is locked so that
two runs of it claimed at once see each other; so do SQLite and every refusal (which needs to
know why).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Interval, Text, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.coalesce import Coalescer
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.executor.database import once_more_if_disconnected
from keeperhub_scheduler.runs import ClaimedRun, RunRef

log = logging.getLogger("keeperhub_scheduler.executor")

R = schedule_runs
S = workflow_schedules
W = workflows

BATCH_LIMIT = 10  # a receive's worth
# A retry's message may come back a moment before the attempt time we stored with it.
RETRY_TOLERANCE = timedelta(seconds=2)
FLAGS = (
    S.c.enabled.label("schedule_enabled"),
    S.c.paused_at,
    S.c.paused_until,
    S.c.overlap_policy,
    W.c.enabled.label("workflow_enabled"),
)
RUN_COLUMNS = (
    R.c.id,
    R.c.schedule_id,
    R.c.workflow_id,
    R.c.kind,
    R.c.scheduled_for,
    R.c.attempts,
    R.c.ignore_overlap,
)


@dataclass(frozen=True)
class Refusal:
    """Why a delivery's run could not be claimed (``status`` None: no such run; "mismatch":
    the message names another workflow or schedule than the run)."""

    status: str | None
    wait_seconds: float = 0.0  # > 0: the run may become claimable after this long


@dataclass(frozen=True)
class Skipped:
    run: ClaimedRun
    reason: str


class Claims:
    """The claims of one executor. On PostgreSQL, claims submitted together go out as one
    statement (see ``coalesce``); a claim that statement did not take, and every claim on
    SQLite, takes the transactional path, one by one."""

    def __init__(self, engine: AsyncEngine, lease: timedelta) -> None:
        self.engine = engine
        self.lease = lease
        self._batches: Coalescer[tuple[str, str, str], Any] | None = None
        if engine.dialect.name == "postgresql":
            self._batches = Coalescer(self._claim_batch, limit=BATCH_LIMIT)

    async def claim(self, run: RunRef) -> ClaimedRun | Skipped | Refusal:
        """Take the run for one attempt, or say why not; a skip is recorded before this returns.

        The message must name the run's own workflow and schedule: one that does not is refused
        and the run is left untouched, so a stray or unsigned message can neither run nor spoil it.
        """
        if self._batches is not None:
            names = (run.run_id, run.workflow_id, run.schedule_id)
            try:
                row = await self._batches.submit(names)
            except DBAPIError as error:
                # Rare (a deadlock between two batches taking over the same runs, say): the
                # slow path below claims this run alone, or raises if the database is down.
                log.warning("batched claim failed; claiming alone", extra={"error": str(error)})
                row = None
            if row is not None:
                return await self._checked(row)
        return await once_more_if_disconnected(
            lambda: _claim_in_transaction(self.engine, run, self.lease)
        )

    async def _claim_batch(self, batch: list[tuple[str, str, str]]) -> list[Any]:
        """One row per item: its claimed run with the flags, or None (not claimed here)."""
        run_ids, workflow_ids, schedule_ids = (list(column) for column in zip(*batch, strict=True))
        parameters = {
            "b_run_ids": run_ids,
            "b_workflow_ids": workflow_ids,
            "b_schedule_ids": schedule_ids,
            "b_lease": self.lease,
        }

        async def execute() -> list[Any]:
            async with self.engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                return list(await connection.execute(BATCH_CLAIM, parameters))

        rows = {row.id: row for row in await once_more_if_disconnected(execute)}
        # A run named twice in one batch (a duplicate delivery) was claimed once: the first
        # item gets the row, the other finds the run held and is refused on the slow path.
        return [rows.pop(run_id, None) for run_id in run_ids]

    async def _checked(self, row: Any) -> ClaimedRun | Skipped:
        run = _claimed(row)
        reason = _switched_off(row, row.now)
        if reason is None:
            return run
        async with self.engine.begin() as connection:
            await connection.execute(_skip_statement(run, reason, func.now()))
        return Skipped(run, reason)


async def _claim_in_transaction(
    engine: AsyncEngine, run: RunRef, lease: timedelta
) -> ClaimedRun | Skipped | Refusal:
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await _claim_row(connection, run, now, lease)
        if row is None:
            return await _refusal(connection, run, now)
        claimed = _claimed(row)
        reason = _switched_off(row, now) or await _overlap(connection, row, now)
        if reason is None:
            return claimed
        await connection.execute(_skip_statement(claimed, reason, now))
        return Skipped(claimed, reason)


def _claimed(row: Any) -> ClaimedRun:
    return ClaimedRun(
        run_id=row.id,
        workflow_id=row.workflow_id,
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
        kind=row.kind,
        attempt=row.attempts,
    )


async def _claim_row(
    connection: AsyncConnection, run: RunRef, now: datetime, lease: timedelta
) -> Any:
    """The claimed run joined with its schedule's and workflow's flags, or None.

    PostgreSQL returns the joined columns from the UPDATE itself; SQLite's RETURNING can only
    name the updated table, so there the flags come from a second statement in the same
    transaction (the row is already ours by then).
    """
    names = (run.run_id, run.workflow_id, run.schedule_id)
    if connection.dialect.name == "postgresql":
        statement = _claim_statement(*names, lease, now, overlap_checked=True)
        return (await connection.execute(statement)).first()
    statement = _claim_statement(*names, lease, now, overlap_checked=True, joined=False)
    row = (await connection.execute(statement)).first()
    if row is None:
        return None
    flags_query = select(*FLAGS).join(W, W.c.id == S.c.workflow_id).where(S.c.id == row.schedule_id)
    flags = (await connection.execute(flags_query)).one()
    return SimpleNamespace(**row._mapping, **flags._mapping)


def _claim_statement(
    run_id: Any,
    workflow_id: Any,
    schedule_id: Any,
    lease: Any,
    now: Any,
    *,
    overlap_checked: bool,
    joined: bool = True,
) -> Any:
    """The claim as one UPDATE, of values or of bind parameters. ``now`` is the database's
    ``now()`` or an instant already read from it. Without ``overlap_checked`` only runs that
    need no overlap check are claimed."""
    claimable = or_(
        R.c.status.in_(("pending", "enqueued")),
        and_(R.c.status == "retrying", R.c.next_attempt_at <= now + RETRY_TOLERANCE),
        and_(R.c.status == "running", R.c.lease_until < now),
    )
    conditions = [
        R.c.id == run_id,
        R.c.workflow_id == workflow_id,
        R.c.schedule_id == schedule_id,
        claimable,
    ]
    if joined:
        conditions += [R.c.schedule_id == S.c.id, S.c.workflow_id == W.c.id]
    if not overlap_checked:
        conditions.append(or_(S.c.overlap_policy == "allow", R.c.ignore_overlap))
    returned = (*RUN_COLUMNS, *FLAGS) if joined else RUN_COLUMNS
    return (
        update(R)
        .where(*conditions)
        .values(
            status="running",
            attempts=R.c.attempts + 1,
            lease_until=now + lease,
            started_at=func.coalesce(R.c.started_at, now),
            next_attempt_at=None,
        )
        .returning(*returned)
    )


def _batch_claim_statement() -> Any:
    """The claim of many runs at once, over arrays of their names; built once, so the hot path
    only binds its parameters (building and keying a statement per claim cost more CPU than
    running it). b_: names of columns are reserved in an UPDATE."""
    names = func.unnest(
        bindparam("b_run_ids", type_=ARRAY(Text())),
        bindparam("b_workflow_ids", type_=ARRAY(Text())),
        bindparam("b_schedule_ids", type_=ARRAY(Text())),
    )
    named = names.table_valued("run_id", "workflow_id", "schedule_id").render_derived(name="m")
    lease = bindparam("b_lease", type_=Interval())
    statement = _claim_statement(
        named.c.run_id, named.c.workflow_id, named.c.schedule_id, lease, func.now(),
        overlap_checked=False,
    )  # fmt: skip
    return statement.returning(func.now().label("now"))


BATCH_CLAIM = _batch_claim_statement()


def _skip_statement(run: ClaimedRun, reason: str, now: Any) -> Any:
    return (
        update(R)
        .where(R.c.id == run.run_id, R.c.status == "running", R.c.attempts == run.attempt)
        .values(status="skipped", skip_reason=reason, finished_at=now, lease_until=None)
    )


async def _refusal(connection: AsyncConnection, run: RunRef, now: datetime) -> Refusal:
    statement = select(
        R.c.status, R.c.next_attempt_at, R.c.lease_until, R.c.workflow_id, R.c.schedule_id
    ).where(R.c.id == run.run_id)
    row = (await connection.execute(statement)).first()
    if row is None:
        return Refusal(None)
    if (row.workflow_id, row.schedule_id) != (run.workflow_id, run.schedule_id):
        return Refusal("mismatch")
    # Not yet: a retry not due, or a run another executor holds under a live lease (this copy
    # comes back when the lease ends, and takes the run over if that executor died).
    until = {"retrying": row.next_attempt_at, "running": row.lease_until}.get(row.status)
    wait = max(0.0, (until - now).total_seconds()) if until is not None else 0.0
    return Refusal(row.status, wait)


def _switched_off(row: Any, now: datetime) -> str | None:
    """Why the run may not run now that its schedule or workflow changed, or None."""
    if not row.workflow_enabled:
        return "workflow_disabled"
    if row.kind == "schedule":
        # A run someone asked for (trigger, backfill) runs even while the schedule is off.
        if not row.schedule_enabled:
            return "schedule_disabled"
        if row.paused_at is not None and (row.paused_until is None or row.paused_until > now):
            return "paused"
    return None


async def _overlap(connection: AsyncConnection, row: Any, now: datetime) -> str | None:
    if row.overlap_policy != "skip" or row.ignore_overlap:
        return None
    # Lock the schedule so that two runs of it claimed at once see each other: the second
    # waits here until the first commits, then finds it in flight.
    await connection.execute(select(S.c.id).where(S.c.id == row.schedule_id).with_for_update())
    in_flight = (
        select(R.c.id)
        .where(
            R.c.schedule_id == row.schedule_id,
            R.c.id != row.id,
            or_(and_(R.c.status == "running", R.c.lease_until >= now), R.c.status == "retrying"),
        )
        .limit(1)
    )
    return "overlap" if (await connection.execute(in_flight)).first() is not None else None
