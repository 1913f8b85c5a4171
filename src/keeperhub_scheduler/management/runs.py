"""The run history: per schedule or across all, newest occurrence first, and one run."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.errors import NotFoundError
from keeperhub_scheduler.management.models import Run, RunPage, RunQuery
from keeperhub_scheduler.management.pages import decode_cursor, encode_cursor
from keeperhub_scheduler.management.sql import schedule_row
from keeperhub_scheduler.management.views import run_view


async def list_runs(
    engine: AsyncEngine, query: RunQuery, schedule_id: str | None = None
) -> RunPage:
    """One page of runs, ordered by ``scheduled_for`` descending (then id).

    ``since``/``until`` bound ``scheduled_for``; ``schedule_id`` that does not exist is a
    ``NotFoundError`` (an empty page would hide a typo).
    """
    statement = (
        select(schedule_runs)
        .order_by(schedule_runs.c.scheduled_for.desc(), schedule_runs.c.id.desc())
        .limit(query.limit + 1)
    )
    if query.status:
        statement = statement.where(schedule_runs.c.status.in_(query.status))
    if query.kind is not None:
        statement = statement.where(schedule_runs.c.kind == query.kind)
    if query.workflow_id is not None:
        statement = statement.where(schedule_runs.c.workflow_id == query.workflow_id)
    if query.since is not None:
        statement = statement.where(schedule_runs.c.scheduled_for >= query.since)
    if query.until is not None:
        statement = statement.where(schedule_runs.c.scheduled_for < query.until)
    if query.cursor is not None:
        instant, ident = decode_cursor(query.cursor)
        statement = statement.where(
            or_(
                schedule_runs.c.scheduled_for < instant,
                and_(schedule_runs.c.scheduled_for == instant, schedule_runs.c.id < ident),
            )
        )
    async with engine.connect() as connection:
        if schedule_id is not None:
            await schedule_row(connection, schedule_id)
            statement = statement.where(schedule_runs.c.schedule_id == schedule_id)
        rows = list((await connection.execute(statement)).all())
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return RunPage(
        items=[run_view(row) for row in page],
        next_cursor=encode_cursor(page[-1].scheduled_for, page[-1].id) if more else None,
    )


async def get_run(engine: AsyncEngine, run_id: str) -> Run:
    async with engine.connect() as connection:
        row = (
            await connection.execute(select(schedule_runs).where(schedule_runs.c.id == run_id))
        ).first()
    if row is None:
        raise NotFoundError("run", run_id)
    return run_view(row)
