"""Messages in the original dispatcher's format: no ``runId``, only (scheduleId, triggerTime)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs as R
from keeperhub_scheduler.db.tables import workflow_schedules as S
from keeperhub_scheduler.runs import RunRef, new_run_id
from keeperhub_scheduler.transport.messages import LegacyMessage


async def run_for_legacy_message(engine: AsyncEngine, message: LegacyMessage) -> RunRef | None:
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
                scheduled_for=message.scheduled_for,
                due_at=message.scheduled_for,
                status="enqueued",
                created_at=now,
                enqueued_at=now,
            )
            .on_conflict_do_nothing(index_elements=[R.c.schedule_id, R.c.scheduled_for])
        )
        found = await connection.execute(
            select(R.c.id).where(
                R.c.schedule_id == message.schedule_id,
                R.c.scheduled_for == message.scheduled_for,
            )
        )
        return RunRef(
            run_id=str(found.scalar_one()),
            workflow_id=message.workflow_id,
            schedule_id=message.schedule_id,
            scheduled_for=message.scheduled_for,
        )
