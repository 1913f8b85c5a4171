"""Schedules: create, read, list, update, delete.

Every write that changes when a schedule fires re-plans it in the same transaction
(``service.plan_values``: next_run_at, decided_through = now, plan_key), so the dispatcher never
fires a ``next_run_at`` computed for the old timing and never fires an occurrence from before the
change. A change of policy only (misfire, catch-up, overlap) leaves the plan alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import workflow_schedules, workflows
from keeperhub_scheduler.errors import ConflictError, InvalidScheduleError, NotFoundError
from keeperhub_scheduler.management.models import (
    ScheduleCreate,
    ScheduleDetail,
    SchedulePage,
    ScheduleQuery,
    ScheduleUpdate,
)
from keeperhub_scheduler.management.pages import decode_cursor, encode_cursor
from keeperhub_scheduler.management.service import new_schedule_id, plan_values
from keeperhub_scheduler.management.sql import recent_runs, schedule_row
from keeperhub_scheduler.management.views import (
    build_timing,
    paused_clause,
    schedule_detail,
    schedule_view,
)
from keeperhub_scheduler.timing import Timing, timing_of_row

# The fields whose change re-plans the schedule (jitter moves every due instant).
TIMING_FIELDS = frozenset(
    {"cron_expression", "interval_seconds", "anchor_at", "timezone", "start_at", "end_at"}
)


async def get_schedule(
    engine: AsyncEngine, schedule_id: str, *, fires: int = 5, runs: int = 5
) -> ScheduleDetail:
    """The schedule with its next ``fires`` fire times and its last ``runs`` runs."""
    async with engine.connect() as connection:
        return await _detail(connection, schedule_id, fires, runs)


async def _detail(
    connection: AsyncConnection, schedule_id: str, fires: int = 5, runs: int = 5
) -> ScheduleDetail:
    now = await database_now(connection)
    row = await schedule_row(connection, schedule_id)
    return schedule_detail(row, now, await recent_runs(connection, schedule_id, runs), fires)


async def create_schedule(engine: AsyncEngine, spec: ScheduleCreate) -> ScheduleDetail:
    """One schedule per workflow: 404 without the workflow, 409 when it has one already."""
    timing = build_timing(
        spec.cron_expression,
        spec.interval_seconds,
        timezone=spec.timezone,
        anchor_at=spec.anchor_at,
        start_at=spec.start_at,
        end_at=spec.end_at,
    )
    schedule_id = new_schedule_id()
    async with engine.begin() as connection:
        now = await database_now(connection)
        found = await connection.execute(
            select(workflows.c.id).where(workflows.c.id == spec.workflow_id)
        )
        if found.first() is None:
            raise NotFoundError("workflow", spec.workflow_id)
        values = spec.model_dump(exclude={"cron_expression"}) | {
            "id": schedule_id,
            "cron_expression": timing.cron_expression,
            "created_at": now,
            "updated_at": now,
        }
        values |= _plan(timing, schedule_id, spec.jitter_seconds, now, enabled=spec.enabled)
        statement = (
            store_for(engine)
            .insert(workflow_schedules)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[workflow_schedules.c.workflow_id])
            .returning(workflow_schedules.c.id)
        )
        try:
            inserted = (await connection.execute(statement)).first()
        except IntegrityError as error:  # the workflow went away meanwhile
            raise NotFoundError("workflow", spec.workflow_id) from error
        if inserted is None:
            existing = await connection.execute(
                select(workflow_schedules.c.id).where(
                    workflow_schedules.c.workflow_id == spec.workflow_id
                )
            )
            raise ConflictError(
                f"workflow {spec.workflow_id!r} already has a schedule"
                f" ({existing.scalar_one_or_none()}); update or delete that one"
            )
        return await _detail(connection, schedule_id)


async def list_schedules(engine: AsyncEngine, query: ScheduleQuery) -> SchedulePage:
    """Oldest first (by creation), filtered, one page of at most ``query.limit``."""
    async with engine.connect() as connection:
        now = await database_now(connection)
        statement = (
            select(workflow_schedules)
            .order_by(workflow_schedules.c.created_at, workflow_schedules.c.id)
            .limit(query.limit + 1)
        )
        if query.workflow_id is not None:
            statement = statement.where(workflow_schedules.c.workflow_id == query.workflow_id)
        if query.enabled is not None:
            statement = statement.where(workflow_schedules.c.enabled == query.enabled)
        if query.paused is not None:
            paused = paused_clause(now)
            statement = statement.where(paused if query.paused else ~paused)
        if query.cursor is not None:
            created, ident = decode_cursor(query.cursor)
            statement = statement.where(
                or_(
                    workflow_schedules.c.created_at > created,
                    and_(
                        workflow_schedules.c.created_at == created, workflow_schedules.c.id > ident
                    ),
                )
            )
        rows = list((await connection.execute(statement)).all())
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return SchedulePage(
        items=[schedule_view(row, now) for row in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )


async def update_schedule(
    engine: AsyncEngine, schedule_id: str, patch: ScheduleUpdate
) -> ScheduleDetail:
    given = {name for name in patch.model_fields_set}
    async with engine.begin() as connection:
        now = await database_now(connection)
        row = await schedule_row(connection, schedule_id, lock=True)
        values = _changed_values(row, patch, given)
        if not values:
            return await _detail(connection, schedule_id)
        timing = _new_timing(row, patch, given)
        jitter = values.get("jitter_seconds", row.jitter_seconds)
        enabled = values.get("enabled", row.enabled)
        if timing is not None:
            values["cron_expression"] = timing.cron_expression
            values["interval_seconds"] = timing.interval_seconds
            values["anchor_at"] = timing.anchor_at
        current = timing or _row_timing(row)
        if current is not None and (
            _replans(row, current, jitter) or (enabled and not row.enabled)
        ):
            values |= _plan(current, row.id, jitter, now, enabled=enabled)
        elif not enabled:
            values["next_run_at"] = None
        values["updated_at"] = now
        await connection.execute(
            update(workflow_schedules).where(workflow_schedules.c.id == row.id).values(**values)
        )
        return await _detail(connection, schedule_id)


async def delete_schedule(engine: AsyncEngine, schedule_id: str) -> None:
    """Delete the schedule and (by cascade) its runs."""
    async with engine.begin() as connection:
        deleted = await connection.execute(
            delete(workflow_schedules)
            .where(workflow_schedules.c.id == schedule_id)
            .returning(workflow_schedules.c.id)
        )
        if deleted.first() is None:
            raise NotFoundError("schedule", schedule_id)


def _changed_values(row: Any, patch: ScheduleUpdate, given: set[str]) -> dict[str, Any]:
    """The columns the patch sets. ``null`` means "unchanged" except for the clearable ones."""
    clearable = {"anchor_at", "start_at", "end_at"}
    values: dict[str, Any] = {}
    for name in given:
        value = getattr(patch, name)
        if value is None and name not in clearable:
            continue
        if name in ("cron_expression", "interval_seconds"):
            values[name] = value  # rewritten from the new timing by the caller
        elif value != getattr(row, name):
            values[name] = value
    return values


def _new_timing(row: Any, patch: ScheduleUpdate, given: set[str]) -> Timing | None:
    """The timing after the patch, validated; None when the patch leaves the timing alone."""
    if not given & TIMING_FIELDS:
        return None
    cron_expression = patch.cron_expression
    interval_seconds = patch.interval_seconds
    if cron_expression is None and interval_seconds is None:
        # Neither given: the schedule stays of its kind.
        if row.interval_seconds is not None:
            interval_seconds = row.interval_seconds
        else:
            cron_expression = row.cron_expression
    anchor_at = row.anchor_at if interval_seconds is not None else None
    if "anchor_at" in given:
        anchor_at = patch.anchor_at
    return build_timing(
        cron_expression,
        interval_seconds,
        timezone=patch.timezone or row.timezone,
        anchor_at=anchor_at,
        start_at=patch.start_at if "start_at" in given else row.start_at,
        end_at=patch.end_at if "end_at" in given else row.end_at,
    )


def _row_timing(row: Any) -> Timing | None:
    try:
        return timing_of_row(row)
    except InvalidScheduleError:
        return None


def _replans(row: Any, timing: Timing, jitter: int) -> bool:
    """True when the new timing (or jitter) is not the one the row was planned for."""
    old = _row_timing(row)
    return old is None or old.plan_key(row.jitter_seconds) != timing.plan_key(jitter)


def _plan(
    timing: Timing, schedule_id: str, jitter: int, now: datetime, *, enabled: bool
) -> dict[str, Any]:
    values = plan_values(timing, schedule_id, jitter, now)
    if not enabled:
        values["next_run_at"] = None  # planned again when it is enabled
    return values
