"""Claiming a run for one attempt: which delivery may execute it, and whether it may run at all.

A claim is a conditional UPDATE to ``running`` under a lease. It succeeds for a run that is
waiting (pending, enqueued, or retrying and due) or whose lease has lapsed (its executor died);
any other delivery of the run finds it running under a live lease, or finished, and is refused.
The claim also re-checks that the schedule and its workflow are still enabled (and the schedule
not paused), and applies the schedule's overlap policy; a run that may not run is ``skipped``
with the reason.

On PostgreSQL the common case is one autocommitted statement: the claim, with the flags joined
in and the clock read from ``now()``. Runs of schedules whose overlap policy is ``skip`` take the
transactional path, where the schedule row is locked so that two runs of it claimed at once see
each other; so do SQLite and every refusal (which needs to know why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Interval, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.executor.database import once_more_if_disconnected
from keeperhub_scheduler.ids import new_run_id
from keeperhub_scheduler.messages import RunMessage

R = schedule_runs
S = workflow_schedules
W = workflows

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
class ClaimedRun:
    id: str
    schedule_id: str
    workflow_id: str
    kind: str
    scheduled_for: datetime
    attempt: int  # this attempt's number, 1 for the first


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


async def claim(
    engine: AsyncEngine, message: RunMessage, run_id: str, lease: timedelta
) -> ClaimedRun | Skipped | Refusal:
    """Take the run for one attempt, or say why not; a skip is recorded before this returns.

    The message must name the run's own workflow and schedule: one that does not is refused
    and the run is left untouched, so a stray or unsigned message can neither run nor spoil it.
    """
    if engine.dialect.name == "postgresql":
        return await once_more_if_disconnected(
            lambda: _claim_postgres(engine, message, run_id, lease)
        )
    return await _claim_in_transaction(engine, message, run_id, lease)


async def _claim_postgres(
    engine: AsyncEngine, message: RunMessage, run_id: str, lease: timedelta
) -> ClaimedRun | Skipped | Refusal:
    """One autocommitted statement for a run that needs no overlap check; otherwise (or when
    the run cannot be claimed, to learn why) the transactional path."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        parameters = {
            "b_run_id": run_id,
            "b_workflow_id": message.workflow_id,
            "b_schedule_id": message.schedule_id,
            "b_lease": lease,
        }
        row = (await connection.execute(FAST_CLAIM, parameters)).first()
        if row is not None:
            run = _claimed(row)
            reason = _switched_off(row, row.now)
            if reason is None:
                return run
            await connection.execute(_skip_statement(run, reason, func.now()))
            return Skipped(run, reason)
    return await _claim_in_transaction(engine, message, run_id, lease)


async def _claim_in_transaction(
    engine: AsyncEngine, message: RunMessage, run_id: str, lease: timedelta
) -> ClaimedRun | Skipped | Refusal:
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await _claim_row(connection, message, run_id, now, lease)
        if row is None:
            return await _refusal(connection, message, run_id, now)
        run = _claimed(row)
        reason = _switched_off(row, now) or await _overlap(connection, row, now)
        if reason is None:
            return run
        await connection.execute(_skip_statement(run, reason, now))
        return Skipped(run, reason)


def _claimed(row: Any) -> ClaimedRun:
    return ClaimedRun(
        row.id, row.schedule_id, row.workflow_id, row.kind, row.scheduled_for, row.attempts
    )


async def _claim_row(
    connection: AsyncConnection, message: RunMessage, run_id: str, now: datetime, lease: timedelta
) -> Any:
    """The claimed run joined with its schedule's and workflow's flags, or None.

    PostgreSQL returns the joined columns from the UPDATE itself; SQLite's RETURNING can only
    name the updated table, so there the flags come from a second statement in the same
    transaction (the row is already ours by then).
    """
    names = (run_id, message.workflow_id, message.schedule_id)
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


# Built once: the hot path only binds its parameters (building and keying a statement per claim
# cost more CPU than running it).
FAST_CLAIM = _claim_statement(
    bindparam("b_run_id"),  # b_: names of columns are reserved in an UPDATE
    bindparam("b_workflow_id"),
    bindparam("b_schedule_id"),
    bindparam("b_lease", type_=Interval()),
    func.now(),
    overlap_checked=False,
).returning(func.now().label("now"))


def _skip_statement(run: ClaimedRun, reason: str, now: Any) -> Any:
    return (
        update(R)
        .where(R.c.id == run.id, R.c.status == "running", R.c.attempts == run.attempt)
        .values(status="skipped", skip_reason=reason, finished_at=now, lease_until=None)
    )


async def _refusal(
    connection: AsyncConnection, message: RunMessage, run_id: str, now: datetime
) -> Refusal:
    statement = select(
        R.c.status, R.c.next_attempt_at, R.c.lease_until, R.c.workflow_id, R.c.schedule_id
    ).where(R.c.id == run_id)
    row = (await connection.execute(statement)).first()
    if row is None:
        return Refusal(None)
    if (row.workflow_id, row.schedule_id) != (message.workflow_id, message.schedule_id):
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


async def run_for_legacy_message(engine: AsyncEngine, message: RunMessage) -> str | None:
    """The run of (scheduleId, triggerTime) for a message in the original's format.

    The original dispatcher made no run rows; the first delivery creates one (the unique key
    makes concurrent deliveries agree on it). None when the schedule no longer exists.
    """
    async with engine.begin() as connection:
        schedule = (
            await connection.execute(select(S.c.id).where(S.c.id == message.schedule_id))
        ).first()
        if schedule is None:
            return None
        now = await database_now(connection)
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        await connection.execute(
            dialect.insert(R)
            .values(
                id=new_run_id(),
                schedule_id=message.schedule_id,
                workflow_id=message.workflow_id,
                kind="schedule",
                scheduled_for=message.trigger_time,
                due_at=message.trigger_time,
                status="enqueued",
                created_at=now,
                enqueued_at=now,
            )
            .on_conflict_do_nothing(index_elements=[R.c.schedule_id, R.c.scheduled_for])
        )
        found = await connection.execute(
            select(R.c.id).where(
                R.c.schedule_id == message.schedule_id,
                R.c.scheduled_for == message.trigger_time,
            )
        )
        return str(found.scalar_one())
