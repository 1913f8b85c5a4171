"""Controlling a schedule: pause, resume, run now (trigger) and backfill.

A pause only sets ``paused_at``/``paused_until``/``paused_note``; the dispatcher records each
occurrence during it as skipped ('paused') and clears the pause by itself at ``paused_until``.
Trigger and backfill write ``pending`` runs (kind 'manual' and 'backfill'): the dispatcher's relay
sends them like any other, and the executor runs them even while the schedule is disabled or
paused (someone asked for them), applying the overlap policy unless ``ignore_overlap``.
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.errors import ConflictError, InvalidScheduleError
from keeperhub_scheduler.management.models import (
    MAX_BACKFILL_RUNS,
    BackfillOccurrence,
    BackfillPreview,
    BackfillRequest,
    BackfillResult,
    PauseRequest,
    Run,
    ScheduleDetail,
    TriggerRequest,
)
from keeperhub_scheduler.management.schedules import get_schedule
from keeperhub_scheduler.management.sql import schedule_row
from keeperhub_scheduler.management.views import is_paused, run_view
from keeperhub_scheduler.runs import RunKind, RunStatus, new_run_id
from keeperhub_scheduler.timing import ONE_MICROSECOND, timing_of_row

INSERT_BATCH = 200


async def pause_schedule(
    engine: AsyncEngine, schedule_id: str, request: PauseRequest
) -> ScheduleDetail:
    """Pause (or change the note and end of a running pause, keeping when it began)."""
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, schedule_id, lock=True)
        if request.until is not None and request.until <= now:
            raise InvalidScheduleError("until must be in the future", field="until")
        began = row.paused_at if is_paused(row, now) else now
        await connection.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == schedule_id)
            .values(
                paused_at=began,
                paused_until=request.until,
                paused_note=request.note,
                updated_at=now,
            )
        )
    return await get_schedule(engine, schedule_id)


async def resume_schedule(engine: AsyncEngine, schedule_id: str) -> ScheduleDetail:
    """End a pause now; ``ConflictError`` when the schedule is not paused."""
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, schedule_id, lock=True)
        if not is_paused(row, now):
            raise ConflictError(f"schedule {schedule_id!r} is not paused")
        await connection.execute(
            update(workflow_schedules)
            .where(workflow_schedules.c.id == schedule_id)
            .values(paused_at=None, paused_until=None, paused_note=None, updated_at=now)
        )
    return await get_schedule(engine, schedule_id)


async def trigger_schedule(engine: AsyncEngine, schedule_id: str, request: TriggerRequest) -> Run:
    """Run now: one pending 'manual' run for the instant of the request (database clock)."""
    store = store_for(engine)
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, schedule_id)
        # (schedule_id, scheduled_for) is unique: should an occurrence of the same microsecond
        # exist, the manual run takes the next free one.
        for step in range(100):
            at = now + step * ONE_MICROSECOND
            values = _run_values(row, at, now, RunKind.MANUAL, request)
            inserted = await store.add_requested_runs(connection, [values])
            if inserted:
                return run_view(inserted[0])
    raise ConflictError(f"schedule {schedule_id!r} has runs at every instant near now")


async def backfill_schedule(
    engine: AsyncEngine, schedule_id: str, request: BackfillRequest
) -> BackfillResult:
    """One pending 'backfill' run per occurrence in [start, end]; existing ones are kept.

    Bounded to ``MAX_BACKFILL_RUNS`` occurrences; ``end`` may not be in the future (those
    occurrences are the dispatcher's to decide).
    """
    _check_order(request)
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, schedule_id)
        occurrences = _backfill_occurrences(row, request, now)
        created = await _insert_backfill(engine, connection, row, occurrences, now, request)
    return BackfillResult(
        schedule_id=schedule_id,
        start=request.start,
        end=request.end,
        occurrences=len(occurrences),
        created=created,
        existing=len(occurrences) - created,
    )


async def preview_backfill(
    engine: AsyncEngine, schedule_id: str, request: BackfillRequest
) -> BackfillPreview:
    """What ``backfill_schedule`` would do now, without doing it: every occurrence in the range,
    each with the run it already has (kept as it is) or none (a run would be created)."""
    _check_order(request)
    async with engine.connect() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, schedule_id)
        occurrences = _backfill_occurrences(row, request, now)
        existing: dict[datetime, Any] = {}
        if occurrences:
            runs = schedule_runs.c
            found = await connection.execute(
                select(runs.scheduled_for, runs.id, runs.status).where(
                    runs.schedule_id == schedule_id,
                    runs.scheduled_for >= occurrences[0],
                    runs.scheduled_for <= occurrences[-1],
                )
            )
            existing = {run.scheduled_for: run for run in found.all()}
    items = [
        BackfillOccurrence(
            scheduled_for=at,
            existing_run_id=existing[at].id if at in existing else None,
            existing_status=existing[at].status if at in existing else None,
        )
        for at in occurrences
    ]
    return BackfillPreview(
        schedule_id=schedule_id,
        start=request.start,
        end=request.end,
        occurrences=items,
        would_create=sum(item.existing_run_id is None for item in items),
    )


def _check_order(request: BackfillRequest) -> None:
    if request.end < request.start:
        raise InvalidScheduleError("end is before start", field="end")


def _backfill_occurrences(row: Any, request: BackfillRequest, now: datetime) -> list[datetime]:
    """The schedule's occurrences in [start, end], checked as a backfill requires."""
    if request.end > now:
        raise InvalidScheduleError(
            "end is in the future; the dispatcher runs future occurrences", field="end"
        )
    try:
        timing = timing_of_row(row)
    except InvalidScheduleError as error:
        raise ConflictError(f"schedule {row.id!r} cannot be read: {error}") from None
    occurrences = list(
        islice(
            _between(timing.occurrences_after(request.start - ONE_MICROSECOND), request.end),
            MAX_BACKFILL_RUNS + 1,
        )
    )
    if len(occurrences) > MAX_BACKFILL_RUNS:
        raise InvalidScheduleError(
            f"more than {MAX_BACKFILL_RUNS} occurrences between start and end;"
            " backfill a shorter range at a time",
            field="end",
        )
    return occurrences


def _between(stream: Any, end: datetime) -> Any:
    for occurrence in stream:
        if occurrence > end:
            return
        yield occurrence


async def _insert_backfill(
    engine: AsyncEngine,
    connection: AsyncConnection,
    row: Any,
    occurrences: list[datetime],
    now: datetime,
    request: BackfillRequest,
) -> int:
    store = store_for(engine)
    created = 0
    for first in range(0, len(occurrences), INSERT_BATCH):
        batch = occurrences[first : first + INSERT_BATCH]
        values = [_run_values(row, at, now, RunKind.BACKFILL, request) for at in batch]
        created += len(await store.add_requested_runs(connection, values))
    return created


def _run_values(
    row: Any,
    scheduled_for: datetime,
    now: datetime,
    kind: RunKind,
    request: TriggerRequest | BackfillRequest,
) -> dict[str, Any]:
    # Due now, not at the occurrence: the relay sends due runs oldest due first.
    return {
        "id": new_run_id(),
        "schedule_id": row.id,
        "workflow_id": row.workflow_id,
        "kind": kind,
        "scheduled_for": scheduled_for,
        "occurrences": 1,
        "due_at": max(now, scheduled_for) if kind == RunKind.MANUAL else now,
        "status": RunStatus.PENDING,
        "note": request.reason,
        "ignore_overlap": request.ignore_overlap,
        "created_at": now,
    }
