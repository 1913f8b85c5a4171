"""The executor's SQL: claim a run under a lease, decide whether it may run, record its outcome.

The claim is one conditional UPDATE: it succeeds for a run that is waiting (pending, enqueued,
retrying and due) or whose lease has lapsed (its executor died). A second delivery of the same run
finds it running under a live lease, or finished, and is dropped. Recording is guarded by the
attempt number, so an executor that lost its lease cannot overwrite the one that took over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import BigInteger, Integer, Text, and_, case, cast, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.ids import new_run_id
from keeperhub_scheduler.messages import RunMessage

R = schedule_runs
S = workflow_schedules
W = workflows

# A retry's message may come back a moment before the attempt time we stored with it.
RETRY_TOLERANCE = timedelta(seconds=2)


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
    """Why a delivery's run could not be claimed (``status`` None: no such run)."""

    status: str | None
    wait_seconds: float = 0.0  # > 0: the run may become claimable after this long


@dataclass(frozen=True)
class Skipped:
    run: ClaimedRun
    reason: str


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


async def claim(
    engine: AsyncEngine, message: RunMessage, run_id: str, lease: timedelta
) -> ClaimedRun | Skipped | Refusal:
    """Take the run for one attempt, or say why not; skips (disabled, paused, overlap) are
    recorded here, in the same transaction as the claim.

    The message must name the run's own workflow and schedule: one that does not is refused
    (``status`` "mismatch") and the run is left untouched, so a stray or unsigned message can
    neither run nor spoil another run.
    """
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await _claim_row(connection, message, run_id, now, lease)
        if row is None:
            return await _refusal(connection, message, run_id, now)
        run = ClaimedRun(
            row.id, row.schedule_id, row.workflow_id, row.kind, row.scheduled_for, row.attempts
        )
        reason = await _skip_reason(connection, row, now)
        if reason is None:
            return run
        await connection.execute(
            update(R)
            .where(R.c.id == run.id)
            .values(status="skipped", skip_reason=reason, finished_at=now, lease_until=None)
        )
        return Skipped(run, reason)


async def _claim_row(
    connection: AsyncConnection, message: RunMessage, run_id: str, now: datetime, lease: timedelta
) -> Any:
    """The claimed run joined with its schedule's and workflow's flags, or None.

    PostgreSQL returns the joined columns from the UPDATE itself; SQLite's RETURNING can only
    name the updated table, so there the flags come from a second statement in the same
    transaction (the row is already ours by then).
    """
    joined = connection.dialect.name == "postgresql"
    statement = _claim_statement(message, run_id, now, lease, joined=joined)
    row = (await connection.execute(statement)).first()
    if row is None or joined:
        return row
    flags = (
        await connection.execute(
            select(
                S.c.enabled.label("schedule_enabled"),
                S.c.paused_at,
                S.c.paused_until,
                S.c.overlap_policy,
                W.c.enabled.label("workflow_enabled"),
            )
            .join(W, W.c.id == S.c.workflow_id)
            .where(S.c.id == row.schedule_id)
        )
    ).one()
    return SimpleNamespace(**row._mapping, **flags._mapping)


def _claim_statement(
    message: RunMessage, run_id: str, now: datetime, lease: timedelta, *, joined: bool
) -> Any:
    claimable = or_(
        R.c.status.in_(("pending", "enqueued")),
        and_(R.c.status == "retrying", R.c.next_attempt_at <= now + RETRY_TOLERANCE),
        and_(R.c.status == "running", R.c.lease_until < now),
    )
    return (
        update(R)
        .where(
            R.c.id == run_id,
            R.c.workflow_id == message.workflow_id,
            R.c.schedule_id == message.schedule_id,
            claimable,
            *([R.c.schedule_id == S.c.id, S.c.workflow_id == W.c.id] if joined else []),
        )
        .values(
            status="running",
            attempts=R.c.attempts + 1,
            lease_until=now + lease,
            started_at=func.coalesce(R.c.started_at, now),
            next_attempt_at=None,
        )
        .returning(
            R.c.id,
            R.c.schedule_id,
            R.c.workflow_id,
            R.c.kind,
            R.c.scheduled_for,
            R.c.attempts,
            R.c.ignore_overlap,
            *(
                [
                    S.c.enabled.label("schedule_enabled"),
                    S.c.paused_at,
                    S.c.paused_until,
                    S.c.overlap_policy,
                    W.c.enabled.label("workflow_enabled"),
                ]
                if joined
                else []
            ),
        )
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


async def _skip_reason(connection: AsyncConnection, row: Any, now: datetime) -> str | None:
    if not row.workflow_enabled:
        return "workflow_disabled"
    if row.kind == "schedule":
        # A run someone asked for (trigger, backfill) runs even while the schedule is off.
        if not row.schedule_enabled:
            return "schedule_disabled"
        if row.paused_at is not None and (row.paused_until is None or row.paused_until > now):
            return "paused"
    if row.overlap_policy == "skip" and not row.ignore_overlap:
        # Lock the schedule so that two runs of it claimed at once see each other: the second
        # waits here until the first commits, then finds it in flight.
        await connection.execute(select(S.c.id).where(S.c.id == row.schedule_id).with_for_update())
        if await _another_in_flight(connection, row.schedule_id, row.id, now):
            return "overlap"
    return None


async def _another_in_flight(
    connection: AsyncConnection, schedule_id: str, run_id: str, now: datetime
) -> bool:
    """In flight: running under a live lease, or waiting for a retry."""
    statement = (
        select(R.c.id)
        .where(
            R.c.schedule_id == schedule_id,
            R.c.id != run_id,
            or_(
                and_(R.c.status == "running", R.c.lease_until >= now),
                R.c.status == "retrying",
            ),
        )
        .limit(1)
    )
    return (await connection.execute(statement)).first() is not None


async def extend_lease(engine: AsyncEngine, run: ClaimedRun, lease: timedelta) -> bool:
    async with engine.begin() as connection:
        now = await database_now(connection)
        result = await connection.execute(
            update(R)
            .where(R.c.id == run.id, R.c.status == "running", R.c.attempts == run.attempt)
            .values(lease_until=now + lease)
        )
        return bool(result.rowcount)


async def record(
    engine: AsyncEngine,
    run: ClaimedRun,
    *,
    status: str,
    http_status: int | None,
    error: str | None,
    retry_in: float | None = None,
) -> bool:
    """Write the attempt's outcome; for a final one, update the schedule's last_* and count.

    False when the run is no longer ours (our lease lapsed and another executor took it).
    """
    final = status in ("succeeded", "failed", "dead")
    async with engine.begin() as connection:
        now = await database_now(connection)
        values: dict[str, Any] = {
            "status": status,
            "http_status": http_status,
            "error": error,
            "lease_until": None,
            "finished_at": now if final else None,
            "next_attempt_at": now + timedelta(seconds=retry_in) if retry_in is not None else None,
        }
        if status == "retrying":
            values["finished_at"] = None
        written = await connection.execute(
            update(R)
            .where(R.c.id == run.id, R.c.status == "running", R.c.attempts == run.attempt)
            .values(**values)
        )
        if not written.rowcount:
            return False
        if final:
            await connection.execute(_schedule_outcome(connection, run, status, error, now))
        return True


def _schedule_outcome(
    connection: AsyncConnection, run: ClaimedRun, status: str, error: str | None, now: datetime
) -> Any:
    """One UPDATE, no read-modify-write: run_count + 1 (KeeperHub keeps it as text), and
    last_status/last_error unless a later occurrence has already reported."""
    newer = or_(S.c.last_status_for.is_(None), S.c.last_status_for <= run.scheduled_for)
    return (
        update(S)
        .where(S.c.id == run.schedule_id)
        .values(
            run_count=_incremented_run_count(connection.dialect.name),
            last_run_at=case(
                (or_(S.c.last_run_at.is_(None), S.c.last_run_at < now), now),
                else_=S.c.last_run_at,
            ),
            last_status=case(
                (newer, "success" if status == "succeeded" else "error"), else_=S.c.last_status
            ),
            last_error=case((newer, error), else_=S.c.last_error),
            last_status_for=case((newer, run.scheduled_for), else_=S.c.last_status_for),
        )
    )


def _incremented_run_count(dialect: str) -> Any:
    count = func.coalesce(func.nullif(S.c.run_count, ""), "0")
    if dialect == "postgresql":
        numeric = count.op("~")("^[0-9]{1,18}$")
        return case((numeric, cast(cast(count, BigInteger) + 1, Text)), else_="1")
    numeric = count.op("NOT GLOB")("*[^0-9]*")
    return case((numeric, cast(cast(count, Integer) + 1, Text)), else_="1")
