"""The dispatcher's claim: due schedules in, decided runs out, in one transaction.

``claim_batch`` locks up to ``batch_size`` due schedules with ``FOR UPDATE SKIP LOCKED`` (so any
number of dispatchers share the work without waiting on each other), asks ``decide`` what each
one's occurrences since the last decision are, inserts the runs (``ON CONFLICT DO NOTHING`` on
(schedule_id, scheduled_for): the dedup key) and advances each schedule's ``next_run_at`` and
``decided_through``. The caller commits; nothing is sent anywhere here. Given a lease, the new
pending runs are inserted already leased to this dispatcher and returned, so that the caller can
send them at once without asking the database for them again (see ``stream``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.dispatcher.decide import Decision, ScheduleState, Skip, decide
from keeperhub_scheduler.dispatcher.writes import advance_schedules, insert_runs
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.runs import RunRef, new_run_id
from keeperhub_scheduler.timing import Timing, cached_timing

log = logging.getLogger(__name__)

S = workflow_schedules
R = schedule_runs


@dataclass
class ClaimResult:
    schedules: int = 0
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    runs: list[RunRef] = field(default_factory=list)  # inserted under our lease, to send

    def add(self, other: ClaimResult) -> None:
        self.schedules += other.schedules
        self.fired += other.fired
        self.skipped.update(other.skipped)
        self.invalid += other.invalid


def timing_of(row: Any) -> Timing:
    """The row's timing, validated (raises ``InvalidScheduleError`` for what KeeperHub wrote)."""
    return cached_timing(
        row.cron_expression,
        row.timezone,
        row.interval_seconds,
        row.anchor_at,
        row.start_at,
        row.end_at,
    )


async def claim_batch(
    connection: AsyncConnection,
    now: datetime,
    batch_size: int,
    grace: timedelta,
    lease_until: datetime | None = None,
) -> ClaimResult:
    """Decide up to ``batch_size`` due schedules; with ``lease_until``, return the runs to send.

    Without a lease (SQLite, or while the queue is failing) the runs are left for
    ``relay.lease_leftovers``.
    """
    if connection.dialect.name != "postgresql":
        lease_until = None  # SQLite cannot say which rows an insert skipped
    rows = await _lock_due(connection, now, batch_size)
    result = ClaimResult(schedules=len(rows))
    run_values: list[dict[str, Any]] = []
    schedule_values: list[dict[str, Any]] = []
    for row in rows:
        try:
            timing = timing_of(row)
        except InvalidScheduleError as error:
            result.invalid += 1
            await _park_invalid(connection, row, error, now)
            continue
        decision = decide(_state(row, timing, now), now, grace)
        run_values += await _runs_of(connection, row, decision, now, lease_until)
        schedule_values.append(_advance(row, timing, decision))
        result.fired += len(decision.fires)
        for skip in decision.skips:
            result.skipped[skip.reason] += skip.count or 1
    inserted = await insert_runs(connection, run_values)
    await advance_schedules(connection, schedule_values)
    if lease_until is not None:
        result.runs = [
            RunRef(
                run_id=run["id"],
                workflow_id=run["workflow_id"],
                schedule_id=run["schedule_id"],
                scheduled_for=run["scheduled_for"],
            )
            for run in run_values
            if run["status"] == "pending" and run["id"] in inserted
        ]
    return result


# Only what deciding needs: a narrow row is cheaper to fetch and convert, batch after batch.
_DUE_COLUMNS = (
    S.c.id,
    S.c.workflow_id,
    S.c.cron_expression,
    S.c.timezone,
    S.c.interval_seconds,
    S.c.anchor_at,
    S.c.start_at,
    S.c.end_at,
    S.c.jitter_seconds,
    S.c.misfire_policy,
    S.c.catchup_window_seconds,
    S.c.max_catchup_runs,
    S.c.paused_at,
    S.c.paused_until,
    S.c.decided_through,
    S.c.plan_key,
    S.c.updated_at,
)


def due_statement(now: datetime, batch_size: int) -> Select[Any]:
    """The claim's query: the earliest due schedules, by the due index, skipping locked ones.

    The schedules are picked and locked in a subquery of their own, so the plan is a walk of
    ``ix_workflow_schedules_due`` that stops after ``batch_size`` rows; each one's workflow is then
    looked up by key. Written as a join, the planner may hash all of ``workflows`` instead.
    """
    due = (
        select(*_DUE_COLUMNS)
        .where(S.c.enabled, S.c.next_run_at <= now)
        .order_by(S.c.next_run_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    workflow_enabled = (
        select(workflows.c.enabled).where(workflows.c.id == due.c.workflow_id).scalar_subquery()
    )
    return select(due, workflow_enabled.label("workflow_enabled"))


async def _lock_due(connection: AsyncConnection, now: datetime, batch_size: int) -> list[Any]:
    return list((await connection.execute(due_statement(now, batch_size))).all())


def _state(row: Any, timing: Timing, now: datetime) -> ScheduleState:
    cursor = row.decided_through
    if row.plan_key is not None and row.plan_key != timing.plan_key(row.jitter_seconds):
        # Timing changed under a stale key by a writer that bypassed the trigger: only
        # occurrences after the change count. A NULL key needs nothing here: the trigger (or the
        # migration) that cleared it has set decided_through already, to the change instant for
        # a new timing, and left it alone when only next_run_at moved, which loses nothing.
        changed = row.updated_at or now
        cursor = max(cursor, changed) if cursor else changed
    return ScheduleState(
        schedule_id=row.id,
        timing=timing,
        decided_through=cursor or now,
        misfire_policy=row.misfire_policy,
        catchup_window=timedelta(seconds=row.catchup_window_seconds),
        max_catchup_runs=row.max_catchup_runs,
        jitter_seconds=row.jitter_seconds,
        paused_at=row.paused_at,
        paused_until=row.paused_until,
        workflow_enabled=bool(row.workflow_enabled),
    )


async def _runs_of(
    connection: AsyncConnection,
    row: Any,
    decision: Decision,
    now: datetime,
    lease_until: datetime | None,
) -> list[dict[str, Any]]:
    values = [
        _run(row, fire.scheduled_for, fire.due_at, now, status="pending")
        | {"relay_lease_until": lease_until}
        for fire in decision.fires
    ]
    for index, skip in enumerate(decision.skips):
        first_decided = index == 0 and not (
            decision.fires and decision.fires[0].scheduled_for < skip.first
        )
        if first_decided and await _extend_skip_range(
            connection, row.id, row.decided_through, skip
        ):
            continue
        values.append(
            _run(row, skip.first, skip.due_at, now, status="skipped")
            | {
                "scheduled_until": skip.last,
                "occurrences": skip.count,
                "skip_reason": skip.reason,
                "finished_at": now,
            }
        )
    return values


def _run(
    row: Any, scheduled_for: datetime, due_at: datetime, now: datetime, status: str
) -> dict[str, Any]:
    return {
        "id": new_run_id(),
        "schedule_id": row.id,
        "workflow_id": row.workflow_id,
        "kind": "schedule",
        "scheduled_for": scheduled_for,
        "scheduled_until": None,
        "occurrences": 1,
        "due_at": due_at,
        "status": status,
        "skip_reason": None,
        "created_at": now,
        "finished_at": None,
        "relay_lease_until": None,
    }


async def _extend_skip_range(
    connection: AsyncConnection, schedule_id: str, previous_end: datetime | None, skip: Skip
) -> bool:
    """Grow the row that skipped the previous occurrences for the same reason, if there is one.

    A schedule paused for a week, or whose workflow is disabled, then keeps one history row that
    says so, instead of one row per occurrence.
    """
    if previous_end is None or skip.count is None:
        return False
    statement = (
        update(R)
        .where(
            R.c.schedule_id == schedule_id,
            R.c.scheduled_until == previous_end,
            R.c.status == "skipped",
            R.c.skip_reason == skip.reason,
            R.c.occurrences.is_not(None),
        )
        .values(scheduled_until=skip.last, occurrences=R.c.occurrences + skip.count)
    )
    return bool((await connection.execute(statement)).rowcount)


def _advance(row: Any, timing: Timing, decision: Decision) -> dict[str, Any]:
    last_fired = decision.fires[-1].scheduled_for if decision.fires else None
    return {
        "b_id": row.id,
        "b_next_run_at": decision.next_run_at,
        "b_decided_through": decision.decided_through or row.decided_through,
        "b_plan_key": timing.plan_key(row.jitter_seconds),
        "b_last_fired": last_fired,
        "b_pause_ended": decision.pause_ended,
    }


async def _park_invalid(
    connection: AsyncConnection, row: Any, error: InvalidScheduleError, now: datetime
) -> None:
    """A row we cannot read (written by someone else): stop claiming it, and say why on it.

    ``next_run_at`` becomes NULL, so it is not claimed again until it is changed (the trigger
    then makes it due, and it is read afresh).
    """
    log.warning(
        "schedule has an invalid timing; parked until it is changed",
        extra={"schedule_id": row.id, "error": str(error)},
    )
    await connection.execute(
        update(S)
        .where(S.c.id == row.id)
        .values(
            next_run_at=None,
            plan_key=None,
            last_status="error",
            last_error=f"invalid schedule: {error}",
            last_status_for=now.astimezone(UTC),
        )
    )
