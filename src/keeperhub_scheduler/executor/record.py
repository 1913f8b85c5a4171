"""Recording an attempt: the run's outcome and, for a final one, its schedule's KeeperHub fields.

Every write is guarded by the attempt number the claim handed out (``status = 'running' AND
attempts = n``), so an executor whose lease lapsed and whose run was taken over cannot overwrite
the outcome of the one that took it. A final outcome updates the run and the schedule's
``last_run_at``, ``last_status``, ``last_error`` and ``run_count`` atomically, with no
read-modify-write: on PostgreSQL one autocommitted statement (a data-modifying CTE), on SQLite
two statements in one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, Text, case, cast, func, or_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.executor.claim import ClaimedRun

R = schedule_runs
S = workflow_schedules
FINAL = ("succeeded", "failed", "dead")


async def record(
    engine: AsyncEngine,
    run: ClaimedRun,
    *,
    status: str,
    http_status: int | None,
    error: str | None,
    retry_in: float | None = None,
) -> bool:
    """Write the attempt's outcome (``retrying``: due again in ``retry_in`` seconds).

    False when the run is no longer ours (our lease lapsed and another executor took it).
    """
    final = status in FINAL
    if engine.dialect.name == "postgresql":
        now: Any = func.now()
        run_update = _run_update(run, status, http_status, error, retry_in, now)
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            if not final:
                return bool((await connection.execute(run_update)).rowcount)
            written = run_update.returning(R.c.schedule_id).cte("written")
            statement = (
                _schedule_update(run, status, error, now, "postgresql")
                .where(S.c.id == written.c.schedule_id)
                .returning(S.c.id)
            )
            return (await connection.execute(statement)).first() is not None
    async with engine.begin() as connection:
        now = datetime.now(UTC)  # SQLite has no clock of its own in a comparable form
        run_update = _run_update(run, status, http_status, error, retry_in, now)
        if not (await connection.execute(run_update)).rowcount:
            return False
        if final:
            schedule_update = _schedule_update(run, status, error, now, "sqlite")
            await connection.execute(schedule_update.where(S.c.id == run.schedule_id))
        return True


async def extend_lease(engine: AsyncEngine, run: ClaimedRun, lease: timedelta) -> bool:
    """Push the run's lease ``lease`` past now; False when the run is no longer ours."""
    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        if postgres:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        now: Any = func.now() if postgres else datetime.now(UTC)
        result = await connection.execute(
            update(R).where(_ours(run)).values(lease_until=now + lease)
        )
        if not postgres:
            await connection.commit()
        return bool(result.rowcount)


def _ours(run: ClaimedRun) -> Any:
    return (R.c.id == run.id) & (R.c.status == "running") & (R.c.attempts == run.attempt)


def _run_update(
    run: ClaimedRun,
    status: str,
    http_status: int | None,
    error: str | None,
    retry_in: float | None,
    now: Any,
) -> Any:
    retrying = status == "retrying"
    return (
        update(R)
        .where(_ours(run))
        .values(
            status=status,
            http_status=http_status,
            error=error,
            lease_until=None,
            finished_at=None if retrying else now,
            next_attempt_at=now + timedelta(seconds=retry_in or 0) if retrying else None,
        )
    )


def _schedule_update(
    run: ClaimedRun, status: str, error: str | None, now: Any, dialect: str
) -> Any:
    """run_count + 1 (KeeperHub keeps it as text), last_run_at, and last_status/last_error
    unless a later occurrence has already reported (outcomes may arrive out of order)."""
    newer = or_(S.c.last_status_for.is_(None), S.c.last_status_for <= run.scheduled_for)
    return update(S).values(
        run_count=_incremented_run_count(dialect),
        last_run_at=case(
            (or_(S.c.last_run_at.is_(None), S.c.last_run_at < now), now),
            else_=S.c.last_run_at,
        ),
        last_status=case(
            (newer, "success" if status == "succeeded" else "error"), else_=S.c.last_status
        ),
        last_error=case((newer, error), else_=S.c.last_error),
        last_status_for=case((newer, run.scheduled_for), else_=S.c.last_status_for),
    )


def _incremented_run_count(dialect: str) -> Any:
    count = func.coalesce(func.nullif(S.c.run_count, ""), "0")
    if dialect == "postgresql":
        numeric = count.op("~")("^[0-9]{1,18}$")
        return case((numeric, cast(cast(count, BigInteger) + 1, Text)), else_="1")
    numeric = count.op("NOT GLOB")("*[^0-9]*")
    return case((numeric, cast(cast(count, Integer) + 1, Text)), else_="1")
