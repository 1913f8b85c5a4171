"""The SQL of ``scheduler_heartbeats``: a process's upsert of its own row, and the status page's
read of every process seen lately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from keeperhub_scheduler.db.tables import scheduler_heartbeats

H = scheduler_heartbeats


@dataclass(frozen=True)
class Beat:
    process_id: str
    role: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    last_work_at: datetime | None
    max_silence_seconds: int


async def record_beat(connection: AsyncConnection, beat: Beat) -> None:
    """Insert or refresh the process's own row (one statement; no other row is touched)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    values = beat.__dict__
    statement = dialect.insert(H).values(**values)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[H.c.process_id],
            set_={
                "beat_at": statement.excluded.beat_at,
                "last_work_at": statement.excluded.last_work_at,
                "max_silence_seconds": statement.excluded.max_silence_seconds,
            },
        )
    )


async def forget_beats_before(connection: AsyncConnection, before: datetime) -> None:
    """Drop the rows of processes gone since ``before`` (a restart is a new process)."""
    await connection.execute(delete(H).where(H.c.beat_at < before))


async def recent_beats(connection: AsyncConnection, since: datetime) -> list[Beat]:
    """Every process that beat at or after ``since``, by role, newest beat first."""
    rows = await connection.execute(
        select(H).where(H.c.beat_at >= since).order_by(H.c.role, H.c.beat_at.desc())
    )
    return [_beat(row) for row in rows.all()]


def _beat(row: Any) -> Beat:
    return Beat(**dict(row._mapping))
