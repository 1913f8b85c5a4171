"""Retention: finished runs older than ``SCHEDULER_RETENTION_DAYS``, and beyond the newest
``SCHEDULER_RETENTION_MAX_RUNS`` finished runs of each schedule, are deleted.

Deletes go in small batches (``BATCH`` ids per DELETE), each its own short transaction, so no lock
is held for long and the dispatcher and executors keep working while it runs. Rows being worked on
are skipped (``SKIP LOCKED``), and a run that is not finished (pending, enqueued, running,
retrying) is never deleted: the statuses are checked again in the DELETE itself.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.runs import FINISHED

log = logging.getLogger("keeperhub_scheduler.retention")

BATCH = 500


async def prune_runs(engine: AsyncEngine, settings: Settings, *, batch: int = BATCH) -> int:
    """Delete what retention allows; return how many runs were deleted."""
    by_age = await _prune_by_age(engine, timedelta(days=settings.scheduler_retention_days), batch)
    by_count = await _prune_by_count(engine, settings.scheduler_retention_max_runs, batch)
    if by_age or by_count:
        log.info("runs pruned", extra={"by_age": by_age, "by_count": by_count})
    return by_age + by_count


async def _prune_by_age(engine: AsyncEngine, age: timedelta, batch: int) -> int:
    async with engine.connect() as connection:
        cutoff = await database_now(connection) - age
    finished = schedule_runs.c.status.in_(FINISHED)
    return await _delete_batches(engine, [finished, schedule_runs.c.finished_at < cutoff], batch)


async def _prune_by_count(engine: AsyncEngine, keep: int, batch: int) -> int:
    finished = schedule_runs.c.status.in_(FINISHED)
    async with engine.connect() as connection:
        crowded = await connection.execute(
            select(schedule_runs.c.schedule_id)
            .where(finished)
            .group_by(schedule_runs.c.schedule_id)
            .having(func.count() > keep)
        )
        schedule_ids = [row.schedule_id for row in crowded.all()]
    deleted = 0
    for schedule_id in schedule_ids:
        oldest_kept = await _oldest_kept(engine, schedule_id, keep)
        if oldest_kept is not None:
            conditions = [
                finished,
                schedule_runs.c.schedule_id == schedule_id,
                schedule_runs.c.scheduled_for < oldest_kept,
            ]
            deleted += await _delete_batches(engine, conditions, batch)
    return deleted


async def _oldest_kept(engine: AsyncEngine, schedule_id: str, keep: int) -> datetime | None:
    """``scheduled_for`` of the ``keep``-th newest finished run of the schedule."""
    async with engine.connect() as connection:
        found = await connection.execute(
            select(schedule_runs.c.scheduled_for)
            .where(schedule_runs.c.schedule_id == schedule_id, schedule_runs.c.status.in_(FINISHED))
            .order_by(schedule_runs.c.scheduled_for.desc())
            .offset(keep - 1)
            .limit(1)
        )
        value = found.scalar_one_or_none()
    return value if isinstance(value, datetime) else None


async def _delete_batches(engine: AsyncEngine, conditions: list[Any], batch: int) -> int:
    deleted = 0
    while True:
        async with engine.begin() as connection:
            ids = (
                (
                    await connection.execute(
                        select(schedule_runs.c.id)
                        .where(*conditions)
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return deleted
            result = await connection.execute(
                delete(schedule_runs).where(
                    schedule_runs.c.id.in_(ids), schedule_runs.c.status.in_(FINISHED)
                )
            )
            deleted += int(result.rowcount)
        if len(ids) < batch:
            return deleted
