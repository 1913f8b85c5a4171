"""What the run store's statements are built from, on both dialects: the state predicates,
written once, and the statements that are the same on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, update

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
)


# --- the state predicates ---------------------------------------------------------------------
def relay_lease_free(now: Any) -> ColumnElement[bool]:
    """No dispatcher holds a live lease on sending the run."""
    lease = schedule_runs.c.relay_lease_until
    return or_(lease.is_(None), lease < now)


def can_be_relayed(now: Any) -> ColumnElement[bool]:
    """Pending, due, and nobody is sending it: the relay may lease it."""
    runs = schedule_runs.c
    return and_(runs.status == RunStatus.PENDING, runs.due_at <= now, relay_lease_free(now))


def lease_pending_statement(now: Any, limit: Any, lease_until: Any) -> Any:
    """Lease up to ``limit`` runs the relay may send, oldest due first; returns their refs.
    Of values or bind parameters (PostgreSQL's is compiled once, with ``now()``)."""
    runs = schedule_runs.c
    claimable = (
        select(runs.id)
        .where(can_be_relayed(now))
        .order_by(runs.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(schedule_runs)
        .where(runs.id.in_(claimable.scalar_subquery()))
        .values(relay_lease_until=lease_until)
        .returning(runs.id, runs.schedule_id, runs.workflow_id, runs.scheduled_for)
    )


def count_pending_statement(now: Any) -> Select[int, int]:
    """(all pending runs, those the relay may lease at ``now``)."""
    return select(func.count(), func.count().filter(can_be_relayed(now))).where(
        schedule_runs.c.status == RunStatus.PENDING
    )


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


# --- statements both dialects build from ------------------------------------------------------
class DueSchedule(NamedTuple):
    """A due schedule as the claim reads it: only what deciding needs (a narrow row is cheaper to
    fetch and convert, batch after batch), and a plain tuple, whose fields are read cheaply."""

    id: str
    workflow_id: str
    cron_expression: str | None
    timezone: str
    interval_seconds: int | None
    anchor_at: datetime | None
    start_at: datetime | None
    end_at: datetime | None
    jitter_seconds: int
    misfire_policy: str
    catchup_window_seconds: int
    max_catchup_runs: int
    paused_at: datetime | None
    paused_until: datetime | None
    decided_through: datetime | None
    plan_key: str | None
    updated_at: datetime | None
    workflow_enabled: bool | None  # None: the workflow row is gone


_DUE_COLUMNS = tuple(workflow_schedules.c[name] for name in DueSchedule._fields[:-1])


def due_statement(now: Any, batch_size: Any) -> Select[Any]:
    """The claim's query: the earliest due schedules, by the due index, skipping locked ones.

    The schedules are picked and locked in a subquery of their own, so the plan is a walk of
    ``ix_workflow_schedules_due`` that stops after ``batch_size`` rows; each one's workflow is then
    looked up by key. Written as a join, the planner may hash all of ``workflows`` instead.
    ``now`` and ``batch_size`` are values or bind parameters; the columns are ``DueSchedule``'s.
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


def run_ref(row: Any) -> RunRef:
    """The reference of a run row (or of a row with its id, names and scheduled_for)."""
    return RunRef(
        run_id=row.id,
        workflow_id=row.workflow_id,
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
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
