"""Small reads the management operations share, for PostgreSQL and SQLite alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.errors import NotFoundError


async def schedule_row(connection: AsyncConnection, schedule_id: str, *, lock: bool = False) -> Any:
    """The schedule's row (locked for the transaction when ``lock``), or ``NotFoundError``."""
    statement = select(workflow_schedules).where(workflow_schedules.c.id == schedule_id)
    if lock:
        statement = statement.with_for_update()
    row = (await connection.execute(statement)).first()
    if row is None:
        raise NotFoundError("schedule", schedule_id)
    return row


async def recent_runs(connection: AsyncConnection, schedule_id: str, count: int = 5) -> list[Any]:
    statement = (
        select(schedule_runs)
        .where(schedule_runs.c.schedule_id == schedule_id)
        .order_by(schedule_runs.c.scheduled_for.desc(), schedule_runs.c.id.desc())
        .limit(count)
    )
    return list((await connection.execute(statement)).all())
