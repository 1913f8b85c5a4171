"""The run store: every statement that changes a run, behind one interface chosen once per engine.

``RunStore`` is the interface the dispatcher, the executor and the management operations use: one
method for each change of a run's state (``runs`` draws the lifecycle), and the few schedule writes
that go with them. Nothing outside ``db/`` asks which database it is on: ``db.store_for(engine)``
picks ``postgres.PostgresStore`` or ``sqlite.SqliteStore`` once, and each keeps its dialect's own
statements together; ``statements`` holds what both build from (the state predicates, written
once). This class implements what is the same on both.

Methods named for the dispatcher's claim take the claim's connection (they run inside its
transaction); the others open their own short transaction.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, false, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler import cron
from keeperhub_scheduler.db.engine import database_now, once_more_if_disconnected
from keeperhub_scheduler.db.new_runs import NewRuns
from keeperhub_scheduler.db.statements import (
    DueSchedule,
    claimed_run,
    count_pending_statement,
    due_statement,
    in_flight,
    lease_pending_statement,
    lost_message,
    ready_to_receive,
    run_ref,
    skip_statement,
    switched_off,
)
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.runs import (
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
# A schedule this engine cannot read is parked: next_run_at NULL, last_error starting with the
# prefix, and plan_key naming the engine's version, so a newer engine knows to read it again
# (dispatcher/unpark.py); rows parked before versions were recorded have a NULL plan_key.
INVALID_PREFIX = "invalid schedule: "


def parked_key(version: int = cron.ENGINE_VERSION) -> str:
    """The plan_key of a row parked as invalid by an engine of ``version``."""
    return f"parked:engine-{version}"


@dataclass(frozen=True)
class Outcome:
    """The outcome of one attempt, as the statements write it."""

    run_id: str
    attempt: int
    status: str
    http_status: int | None
    error: str | None


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
    async def lock_due(
        self, connection: AsyncConnection, now: datetime, limit: int
    ) -> list[DueSchedule]:
        """Up to ``limit`` due, enabled schedules, locked; those other dispatchers hold skipped."""
        result = await connection.execute(due_statement(now, limit))
        return [DueSchedule._make(row) for row in result]

    async def park_invalid(
        self, connection: AsyncConnection, schedule_id: str, problem: str, now: datetime
    ) -> None:
        """A schedule whose timing cannot be read: not claimed again until it is changed."""
        await connection.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == schedule_id)
            .values(
                next_run_at=None,
                plan_key=parked_key(),
                last_status=LastStatus.ERROR,
                last_error=f"{INVALID_PREFIX}{problem}",
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
    async def insert_runs(self, connection: AsyncConnection, runs: NewRuns) -> set[str]:
        """Create the decided runs (pending or skipped); one that exists for its occurrence is
        left alone (the dedup). The fires inserted, when ``knows_inserted``; else an empty set."""

    @abstractmethod
    async def advance_schedules(
        self, connection: AsyncConnection, advances: Sequence[dict[str, Any]]
    ) -> None:
        """Each claimed schedule's new plan: next_run_at, decided_through, plan_key, ..."""

    # --- the relay ------------------------------------------------------------------------
    async def lease_pending(self, limit: int, lease: timedelta) -> list[RunRef]:
        """Lease up to ``limit`` pending, due runs that nobody holds a live lease on."""
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            statement = lease_pending_statement(now, limit, now + lease)
            rows = (await connection.execute(statement)).all()
        return [run_ref(row) for row in rows]

    async def renew_relay_leases(self, run_ids: Sequence[str], lease: timedelta) -> None:
        """Keep the relay leases of runs this dispatcher still holds (buffered or being sent)
        live for ``lease`` more: the relay lease is short, so a killed dispatcher's runs are
        sent by another one seconds later, and renewed while its holder lives."""
        if not run_ids:
            return
        runs = schedule_runs.c
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            await connection.execute(
                update(schedule_runs)
                .where(runs.id.in_(list(run_ids)), runs.status == RunStatus.PENDING)
                .values(relay_lease_until=now + lease)
            )

    @abstractmethod
    async def mark_enqueued(
        self, run_ids: Sequence[str], seconds_ago: Sequence[float]
    ) -> list[float]:
        """pending -> enqueued for runs the transport accepted ``seconds_ago[i]`` seconds ago
        (``enqueued_at`` is that instant, however late the mark); each one's lag in seconds.

        Only still-pending runs change status: a fast executor may already have claimed the run,
        which then keeps its status and only learns when it was sent (a run sent again later,
        still pending, learns the later instant)."""

    @abstractmethod
    async def release(self, run_ids: Sequence[str]) -> None:
        """Give the runs' relay leases back: they were not sent, any pass may send them now."""

    async def count_pending(self) -> tuple[int, int]:
        """(all pending runs, those the relay may lease now): the outbox, and what is left of it."""
        async with self.engine.connect() as connection:
            now = await database_now(connection)
            statement = count_pending_statement(now)
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

    async def legacy_schedule(self, schedule_id: str) -> tuple[Any, datetime] | None:
        """The schedule row a legacy message names (its timing, workflow and switches, and its
        workflow's ``enabled``), with the database's now; None when there is no such schedule."""
        schedules = workflow_schedules.c
        statement = (
            select(
                schedules.id, schedules.workflow_id, schedules.cron_expression, schedules.timezone,
                schedules.interval_seconds, schedules.anchor_at, schedules.start_at,
                schedules.end_at, schedules.catchup_window_seconds,
                schedules.enabled.label("schedule_enabled"),
                func.coalesce(workflows.c.enabled, false()).label("workflow_enabled"),
            )
            .select_from(
                workflow_schedules.outerjoin(workflows, workflows.c.id == schedules.workflow_id)
            )
            .where(schedules.id == schedule_id)
        )  # fmt: skip
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
            now = await database_now(connection)
        return None if row is None else (row, now)

    async def run_for_occurrence(
        self, schedule_id: str, workflow_id: str, occurrence: datetime
    ) -> RunRef:
        """The run of (schedule, occurrence), made enqueued if the dispatcher has not made it
        (a legacy message's; the unique key makes it and our dispatcher agree on one run)."""
        runs = schedule_runs.c
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            await connection.execute(
                self.insert(schedule_runs)
                .values(
                    id=new_run_id(), schedule_id=schedule_id, workflow_id=workflow_id,
                    kind=RunKind.SCHEDULE, scheduled_for=occurrence, due_at=occurrence,
                    status=RunStatus.ENQUEUED, created_at=now, enqueued_at=now,
                )
                .on_conflict_do_nothing(index_elements=[runs.schedule_id, runs.scheduled_for])
            )  # fmt: skip
            found = await connection.execute(
                select(runs.id, runs.workflow_id).where(
                    runs.schedule_id == schedule_id, runs.scheduled_for == occurrence
                )
            )
            row = found.one()
        return RunRef(
            run_id=str(row.id),
            workflow_id=str(row.workflow_id),
            schedule_id=schedule_id,
            scheduled_for=occurrence,
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
        return [run_ref(row) for row in rows]

    # --- the executor -----------------------------------------------------------------------
    async def claim(self, run: RunRef, lease: timedelta) -> ClaimedRun | Skipped | Refusal:
        """Take the run for one attempt (-> running under ``lease``), or say why not.

        The message must name the run's own workflow and schedule: one that does not is refused
        and the run is left untouched. A run whose schedule or workflow was switched off, or
        whose overlap policy forbids it now, is recorded skipped before this returns.
        """
        started = time.monotonic()
        taken = await once_more_if_disconnected(lambda: self._claim_in_transaction(run, lease))
        return await self._still_held(taken, started, lease)

    async def _still_held(
        self, taken: ClaimedRun | Skipped | Refusal, started: float, lease: timedelta
    ) -> ClaimedRun | Skipped | Refusal:
        """The claim, once its lease is known to be live. The lease counts from when the claim
        read the row, and a claim can wait long after that (for the row's lock, for a busy
        database): one that took more than half its lease may hand back a lease about to lapse,
        or lapsed, which a copy of the message would take over while this call goes on
        (KeeperHub called twice). So it is renewed first; if it cannot be, the run was taken
        over meanwhile and is refused as held by another."""
        slow = time.monotonic() - started > lease.total_seconds() / 2
        if not slow or not isinstance(taken, ClaimedRun) or await self.extend_lease(taken, lease):
            return taken
        return Refusal(RunStatus.RUNNING, wait_seconds=lease.total_seconds())

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
        outcome = Outcome(run.run_id, run.attempt, status, http_status, error)
        return await self._record(run, outcome, retry_in)

    @abstractmethod
    async def _record(self, run: ClaimedRun, outcome: Outcome, retry_in: float | None) -> bool:
        """``record`` in this dialect's statements."""


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
