"""The run store: every statement that changes a run, behind one interface chosen once per engine.

``RunStore`` is the interface the dispatcher, the executor and the management operations use: one
method for each change of a run's state (``runs`` draws the lifecycle), and the few schedule writes
that go with them. Nothing outside ``db/`` asks which database it is on: ``db.store_for(engine)``
picks ``postgres.PostgresStore`` or ``sqlite.SqliteStore`` once, and each keeps its dialect's own
statements together. This module holds what both share: the state predicates, written once, and
the statements that are the same on both.

Methods named for the dispatcher's claim take the claim's connection (they run inside its
transaction); the others open their own short transaction.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.runs import (
    ACTIVE,
    RETRY_TOLERANCE,
    ClaimedRun,
    LastStatus,
    OverlapPolicy,
    RunKind,
    RunRef,
    RunStatus,
    SkipReason,
    new_run_id,
)

if TYPE_CHECKING:
    from keeperhub_scheduler.db.listen import DueListener
    from keeperhub_scheduler.transport.messages import LegacyMessage

# The executor's statements log under its name: these lines are about its claims and records.
executor_log = logging.getLogger("keeperhub_scheduler.executor")
T = TypeVar("T")


# --- the state predicates ---------------------------------------------------------------------
def relay_lease_free(now: Any) -> ColumnElement[bool]:
    """No dispatcher holds a live lease on sending the run."""
    lease = schedule_runs.c.relay_lease_until
    return or_(lease.is_(None), lease < now)


def can_be_relayed(now: Any) -> ColumnElement[bool]:
    """Pending, due, and nobody is sending it: the relay may lease it."""
    runs = schedule_runs.c
    return and_(runs.status == RunStatus.PENDING, runs.due_at <= now, relay_lease_free(now))


def lease_lapsed(now: Any) -> ColumnElement[bool]:
    """Running under a lease that has ended: its executor died or lost the database."""
    runs = schedule_runs.c
    return and_(runs.status == RunStatus.RUNNING, runs.lease_until < now)


def retry_due(at: Any) -> ColumnElement[bool]:
    runs = schedule_runs.c
    return and_(runs.status == RunStatus.RETRYING, runs.next_attempt_at <= at)


def can_be_picked_up(now: Any) -> ColumnElement[bool]:
    """An executor may claim the run for an attempt: it waits (pending or enqueued), its retry is
    due (a moment early counts: the message may come back before the attempt time), or it runs
    under a lapsed lease."""
    waiting = schedule_runs.c.status.in_((RunStatus.PENDING, RunStatus.ENQUEUED))
    return or_(waiting, retry_due(now + RETRY_TOLERANCE), lease_lapsed(now))


def ready_to_receive(now: Any) -> ColumnElement[bool]:
    """What the database transport hands an executor: runs already sent (never a pending one,
    which may not be due yet) that it could claim, retries exactly at their time."""
    runs = schedule_runs.c
    sent_and_free = or_(runs.status == RunStatus.ENQUEUED, retry_due(now), lease_lapsed(now))
    return and_(runs.status.in_(ACTIVE), sent_and_free)


def lost_message(now: Any, stale_enqueued: timedelta, lease_grace: timedelta) -> Any:
    """Runs whose message is most likely gone: enqueued long ago, running under a lease lapsed
    for longer than a redelivery takes, or a retry long overdue."""
    runs = schedule_runs.c
    return and_(
        runs.status.in_(ACTIVE),
        or_(
            and_(runs.status == RunStatus.ENQUEUED, runs.enqueued_at < now - stale_enqueued),
            lease_lapsed(now - lease_grace),
            and_(runs.status == RunStatus.RETRYING, runs.next_attempt_at < now - lease_grace),
        ),
    )


def in_flight(now: Any) -> ColumnElement[bool]:
    """What the overlap policy counts: running under a live lease, or waiting for a retry."""
    runs = schedule_runs.c
    live = and_(runs.status == RunStatus.RUNNING, runs.lease_until >= now)
    return or_(live, runs.status == RunStatus.RETRYING)


def held_by(run_id: Any, attempt: Any) -> ColumnElement[bool]:
    """The run is still in the attempt the claim handed out (nobody took it over since)."""
    runs = schedule_runs.c
    return and_(runs.id == run_id, runs.status == RunStatus.RUNNING, runs.attempts == attempt)


# --- what a claim answers ---------------------------------------------------------------------
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


MISMATCH = "mismatch"


async def once_more_if_disconnected(operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation`` again on a fresh connection when its connection had died.

    The executor's connections are not pinged before use (each is one statement; a ping would add
    a round trip to it), so one that died since its last use (a PostgreSQL restart, a failover)
    fails the statement instead; the pool has discarded the dead ones by then. Every operation
    passed here is safe to run twice: a claim that did commit finds the run under a live lease
    the second time, and a record that did commit finds the run no longer running.
    """
    try:
        return await operation()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        executor_log.warning("database connection was lost; running the statement once more")
        return await operation()


class RunStore(ABC):
    """Every change of a run's state, and the schedule writes that go with them."""

    # Whether ``insert_runs`` can tell which runs it inserted (the claim then leases them).
    knows_inserted: bool = False

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @abstractmethod
    def insert(self, table: Table) -> Any:
        """An INSERT on ``table`` that knows this dialect's ``ON CONFLICT``."""

    def due_listener(self) -> DueListener | None:
        """Wake-ups when a schedule becomes due earlier than planned (None: none to listen to)."""
        return None

    # --- the dispatcher's claim, inside its transaction ------------------------------------
    async def lock_due(self, connection: AsyncConnection, now: datetime, limit: int) -> list[Any]:
        """Up to ``limit`` due, enabled schedules, locked; those other dispatchers hold skipped."""
        return list((await connection.execute(due_statement(now, limit))).all())

    async def park_invalid(
        self, connection: AsyncConnection, schedule_id: str, problem: str, now: datetime
    ) -> None:
        """A schedule whose timing cannot be read: not claimed again until it is changed."""
        await connection.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == schedule_id)
            .values(
                next_run_at=None,
                plan_key=None,
                last_status=LastStatus.ERROR,
                last_error=f"invalid schedule: {problem}",
                last_status_for=now.astimezone(UTC),
            )
        )

    async def extend_skip_range(
        self,
        connection: AsyncConnection,
        schedule_id: str,
        previous_end: datetime,
        *,
        reason: str,
        last: datetime,
        count: int,
    ) -> bool:
        """Grow the skip row that ends at ``previous_end`` for the same reason, if there is one."""
        runs = schedule_runs.c
        statement = (
            update(schedule_runs)
            .where(
                runs.schedule_id == schedule_id,
                runs.scheduled_until == previous_end,
                runs.status == RunStatus.SKIPPED,
                runs.skip_reason == reason,
                runs.occurrences.is_not(None),
            )
            .values(scheduled_until=last, occurrences=runs.occurrences + count)
        )
        return bool((await connection.execute(statement)).rowcount)

    @abstractmethod
    async def insert_runs(
        self, connection: AsyncConnection, runs: Sequence[dict[str, Any]]
    ) -> set[str]:
        """Create the decided runs (pending or skipped); one that exists for its occurrence is
        left alone (the dedup). The ids inserted, when ``knows_inserted``; else an empty set."""

    @abstractmethod
    async def advance_schedules(
        self, connection: AsyncConnection, advances: Sequence[dict[str, Any]]
    ) -> None:
        """Each claimed schedule's new plan: next_run_at, decided_through, plan_key, ..."""

    # --- the relay ------------------------------------------------------------------------
    async def lease_pending(self, limit: int, lease: timedelta) -> list[RunRef]:
        """Lease up to ``limit`` pending, due runs that nobody holds a live lease on."""
        runs = schedule_runs.c
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            claimable = (
                select(runs.id)
                .where(can_be_relayed(now))
                .order_by(runs.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            statement = (
                update(schedule_runs)
                .where(runs.id.in_(claimable.scalar_subquery()))
                .values(relay_lease_until=now + lease)
                .returning(runs.id, runs.schedule_id, runs.workflow_id, runs.scheduled_for)
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

    @abstractmethod
    async def mark_enqueued(self, run_ids: Sequence[str]) -> list[float]:
        """pending -> enqueued for runs handed to the transport; each one's lag in seconds.

        Only still-pending ones change: a fast executor may already have claimed the run."""

    @abstractmethod
    async def release(self, run_ids: Sequence[str]) -> None:
        """Give the runs' relay leases back: they were not sent, any pass may send them now."""

    async def count_pending(self) -> tuple[int, int]:
        """(all pending runs, those the relay may lease now): the outbox, and what is left of it."""
        async with self.engine.connect() as connection:
            now = await database_now(connection)
            statement = select(func.count(), func.count().filter(can_be_relayed(now))).where(
                schedule_runs.c.status == RunStatus.PENDING
            )
            total, claimable = (await connection.execute(statement)).one()
        return int(total), int(claimable)

    async def sweep_stale(self, *, stale_enqueued: timedelta, lease_grace: timedelta) -> int:
        """Put runs that lost their message back in the outbox (-> pending); return how many.

        The database, not the queue, is the record of what must run. Sending such a run again is
        safe: the executor's claim lets exactly one delivery of a run execute.
        """
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            statement = (
                update(schedule_runs)
                .where(lost_message(now, stale_enqueued, lease_grace))
                .values(status=RunStatus.PENDING, relay_lease_until=None)
            )
            return int((await connection.execute(statement)).rowcount)

    # --- runs someone asked for -----------------------------------------------------------
    async def add_requested_runs(
        self, connection: AsyncConnection, runs: Sequence[dict[str, Any]]
    ) -> list[Any]:
        """Create pending runs (a trigger, a backfill); one whose occurrence already has a run is
        left alone. The rows inserted."""
        occurrence = [schedule_runs.c.schedule_id, schedule_runs.c.scheduled_for]
        statement = (
            self.insert(schedule_runs)
            .values(list(runs))
            .on_conflict_do_nothing(index_elements=occurrence)
            .returning(schedule_runs)
        )
        return list((await connection.execute(statement)).all())

    async def run_for_legacy(self, message: LegacyMessage) -> RunRef | None:
        """The run of (scheduleId, triggerTime) for a message in the original's format.

        The original dispatcher made no run rows; the first delivery creates one, enqueued (the
        unique key makes concurrent deliveries agree on it). None when the schedule is gone.
        """
        runs = schedule_runs.c
        async with self.engine.begin() as connection:
            schedule = await connection.execute(
                select(workflow_schedules.c.id).where(
                    workflow_schedules.c.id == message.schedule_id
                )
            )
            if schedule.first() is None:
                return None
            now = await database_now(connection)
            await connection.execute(
                self.insert(schedule_runs)
                .values(
                    id=new_run_id(),
                    schedule_id=message.schedule_id,
                    workflow_id=message.workflow_id,
                    kind=RunKind.SCHEDULE,
                    scheduled_for=message.scheduled_for,
                    due_at=message.scheduled_for,
                    status=RunStatus.ENQUEUED,
                    created_at=now,
                    enqueued_at=now,
                )
                .on_conflict_do_nothing(index_elements=[runs.schedule_id, runs.scheduled_for])
            )
            found = await connection.execute(
                select(runs.id).where(
                    runs.schedule_id == message.schedule_id,
                    runs.scheduled_for == message.scheduled_for,
                )
            )
            run_id = str(found.scalar_one())
        return RunRef(
            run_id=run_id,
            workflow_id=message.workflow_id,
            schedule_id=message.schedule_id,
            scheduled_for=message.scheduled_for,
        )

    async def ready_runs(self, limit: int, held: set[str]) -> list[RunRef]:
        """The database transport's receive: runs ``ready_to_receive``, oldest due first, except
        those this process already holds."""
        runs = schedule_runs.c
        async with self.engine.connect() as connection:
            now = await database_now(connection)
            statement = (
                select(runs.id, runs.schedule_id, runs.workflow_id, runs.scheduled_for)
                .where(ready_to_receive(now), runs.id.not_in(held) if held else true())
                .order_by(runs.due_at)
                .limit(limit)
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

    # --- the executor -----------------------------------------------------------------------
    async def claim(self, run: RunRef, lease: timedelta) -> ClaimedRun | Skipped | Refusal:
        """Take the run for one attempt (-> running under ``lease``), or say why not.

        The message must name the run's own workflow and schedule: one that does not is refused
        and the run is left untouched. A run whose schedule or workflow was switched off, or
        whose overlap policy forbids it now, is recorded skipped before this returns.
        """
        return await once_more_if_disconnected(lambda: self._claim_in_transaction(run, lease))

    async def _claim_in_transaction(
        self, run: RunRef, lease: timedelta
    ) -> ClaimedRun | Skipped | Refusal:
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            row = await self._claim_row(connection, run, now, lease)
            if row is None:
                return await _refusal(connection, run, now)
            claimed = claimed_run(row)
            reason = switched_off(row, now) or await _overlap(connection, row, now)
            if reason is None:
                return claimed
            await connection.execute(skip_statement(claimed, reason, now))
            return Skipped(claimed, reason)

    @abstractmethod
    async def _claim_row(
        self, connection: AsyncConnection, run: RunRef, now: datetime, lease: timedelta
    ) -> Any:
        """The claimed run joined with its schedule's and workflow's flags (``FLAGS``), or None."""

    async def skip_claimed(self, run: ClaimedRun, reason: str) -> None:
        """running -> skipped, for a run claimed but not allowed to run (``switched_off``)."""
        async with self.engine.begin() as connection:
            await connection.execute(skip_statement(run, reason, func.now()))

    @abstractmethod
    async def extend_lease(self, run: ClaimedRun, lease: timedelta) -> bool:
        """Push the run's lease ``lease`` past now; False when the run is no longer ours."""

    @abstractmethod
    async def record(
        self,
        run: ClaimedRun,
        *,
        status: RunStatus,
        http_status: int | None,
        error: str | None,
        retry_in: float | None = None,
    ) -> bool:
        """running -> the attempt's outcome (``retrying``: due again in ``retry_in`` seconds); a
        final one also gives the schedule its ``last_*`` fields and ``run_count``, atomically.

        Every write is guarded by the attempt the claim handed out (``held_by``), so an executor
        whose lease lapsed and whose run was taken over cannot overwrite the outcome of the one
        that took it: False then.
        """


# --- statements both dialects build from --------------------------------------------------------
# Only what deciding needs: a narrow row is cheaper to fetch and convert, batch after batch.
_DUE_COLUMNS = tuple(
    workflow_schedules.c[name]
    for name in (
        "id", "workflow_id", "cron_expression", "timezone", "interval_seconds", "anchor_at",
        "start_at", "end_at", "jitter_seconds", "misfire_policy", "catchup_window_seconds",
        "max_catchup_runs", "paused_at", "paused_until", "decided_through", "plan_key",
        "updated_at",
    )
)  # fmt: skip


def due_statement(now: datetime, batch_size: int) -> Select[Any]:
    """The claim's query: the earliest due schedules, by the due index, skipping locked ones.

    The schedules are picked and locked in a subquery of their own, so the plan is a walk of
    ``ix_workflow_schedules_due`` that stops after ``batch_size`` rows; each one's workflow is then
    looked up by key. Written as a join, the planner may hash all of ``workflows`` instead.
    """
    schedules = workflow_schedules.c
    due = (
        select(*_DUE_COLUMNS)
        .where(schedules.enabled, schedules.next_run_at <= now)
        .order_by(schedules.next_run_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    workflow_enabled = (
        select(workflows.c.enabled).where(workflows.c.id == due.c.workflow_id).scalar_subquery()
    )
    return select(due, workflow_enabled.label("workflow_enabled"))


# The schedule's and workflow's flags a claim returns with the run.
FLAGS = (
    workflow_schedules.c.enabled.label("schedule_enabled"),
    workflow_schedules.c.paused_at,
    workflow_schedules.c.paused_until,
    workflow_schedules.c.overlap_policy,
    workflows.c.enabled.label("workflow_enabled"),
)
CLAIMED_COLUMNS = tuple(
    schedule_runs.c[name]
    for name in (
        "id", "schedule_id", "workflow_id", "kind", "scheduled_for", "attempts", "ignore_overlap"
    )
)  # fmt: skip


def claim_statement(
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
    need no overlap check are claimed; ``joined`` returns the flags with the run."""
    runs = schedule_runs.c
    conditions = [
        runs.id == run_id,
        runs.workflow_id == workflow_id,
        runs.schedule_id == schedule_id,
        can_be_picked_up(now),
    ]
    if joined:
        conditions += [
            runs.schedule_id == workflow_schedules.c.id,
            workflow_schedules.c.workflow_id == workflows.c.id,
        ]
    if not overlap_checked:
        overlap_free = workflow_schedules.c.overlap_policy == OverlapPolicy.ALLOW
        conditions.append(or_(overlap_free, runs.ignore_overlap))
    returned = (*CLAIMED_COLUMNS, *FLAGS) if joined else CLAIMED_COLUMNS
    return (
        update(schedule_runs)
        .where(*conditions)
        .values(
            status=RunStatus.RUNNING,
            attempts=runs.attempts + 1,
            lease_until=now + lease,
            started_at=func.coalesce(runs.started_at, now),
            next_attempt_at=None,
        )
        .returning(*returned)
    )


def claimed_run(row: Any) -> ClaimedRun:
    return ClaimedRun(
        run_id=row.id,
        workflow_id=row.workflow_id,
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
        kind=row.kind,
        attempt=row.attempts,
    )


def skip_statement(run: ClaimedRun, reason: str, now: Any) -> Any:
    return (
        update(schedule_runs)
        .where(held_by(run.run_id, run.attempt))
        .values(status=RunStatus.SKIPPED, skip_reason=reason, finished_at=now, lease_until=None)
    )


def switched_off(row: Any, now: datetime) -> str | None:
    """Why a claimed run may not run now that its schedule or workflow changed, or None."""
    if not row.workflow_enabled:
        return SkipReason.WORKFLOW_DISABLED
    if row.kind == RunKind.SCHEDULE:
        # A run someone asked for (trigger, backfill) runs even while the schedule is off.
        if not row.schedule_enabled:
            return SkipReason.SCHEDULE_DISABLED
        if row.paused_at is not None and (row.paused_until is None or row.paused_until > now):
            return SkipReason.PAUSED
    return None


async def _overlap(connection: AsyncConnection, row: Any, now: datetime) -> str | None:
    if row.overlap_policy != OverlapPolicy.SKIP or row.ignore_overlap:
        return None
    # Lock the schedule so that two runs of it claimed at once see each other: the second
    # waits here until the first commits, then finds it in flight.
    schedules = workflow_schedules.c
    await connection.execute(
        select(schedules.id).where(schedules.id == row.schedule_id).with_for_update()
    )
    runs = schedule_runs.c
    others = (
        select(runs.id)
        .where(runs.schedule_id == row.schedule_id, runs.id != row.id, in_flight(now))
        .limit(1)
    )
    found = (await connection.execute(others)).first()
    return SkipReason.OVERLAP if found is not None else None


async def _refusal(connection: AsyncConnection, run: RunRef, now: datetime) -> Refusal:
    runs = schedule_runs.c
    statement = select(
        runs.status, runs.next_attempt_at, runs.lease_until, runs.workflow_id, runs.schedule_id
    ).where(runs.id == run.run_id)
    row = (await connection.execute(statement)).first()
    if row is None:
        return Refusal(None)
    if (row.workflow_id, row.schedule_id) != (run.workflow_id, run.schedule_id):
        return Refusal(MISMATCH)
    # Not yet: a retry not due, or a run another executor holds under a live lease (this copy
    # comes back when the lease ends, and takes the run over if that executor died).
    until = {RunStatus.RETRYING: row.next_attempt_at, RunStatus.RUNNING: row.lease_until}.get(
        row.status
    )
    wait = max(0.0, (until - now).total_seconds()) if until is not None else 0.0
    return Refusal(row.status, wait)


def outcome_values(
    status: Any, http_status: Any, error: Any, finished_at: Any, next_attempt_at: Any
) -> dict[str, Any]:
    """A run's columns for an attempt's outcome."""
    return {
        "status": status,
        "http_status": http_status,
        "error": error,
        "lease_until": None,
        "finished_at": finished_at,
        "next_attempt_at": next_attempt_at,
    }


def schedule_outcome_values(
    scheduled_for: Any, last_status: Any, error: Any, now: Any, run_count: Any
) -> dict[str, Any]:
    """A schedule's KeeperHub fields after a final outcome: ``run_count`` (the dialect's
    increment), last_run_at, and last_status/last_error unless a later occurrence has already
    reported (outcomes may arrive out of order)."""
    schedules = workflow_schedules.c
    newer = or_(schedules.last_status_for.is_(None), schedules.last_status_for <= scheduled_for)
    later_run = or_(schedules.last_run_at.is_(None), schedules.last_run_at < now)
    return {
        "run_count": run_count,
        "last_run_at": case((later_run, now), else_=schedules.last_run_at),
        "last_status": case((newer, last_status), else_=schedules.last_status),
        "last_error": case((newer, error), else_=schedules.last_error),
        "last_status_for": case((newer, scheduled_for), else_=schedules.last_status_for),
    }


def keeperhub_last_status(status: str) -> LastStatus:
    """KeeperHub's words for a final outcome."""
    return LastStatus.SUCCESS if status == RunStatus.SUCCEEDED else LastStatus.ERROR
