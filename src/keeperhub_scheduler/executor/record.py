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

from sqlalchemy import BigInteger, Integer, Interval, Text, bindparam, case, cast, func, or_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.executor.claim import ClaimedRun
from keeperhub_scheduler.executor.database import once_more_if_disconnected

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
    if engine.dialect.name == "postgresql":
        return await once_more_if_disconnected(
            lambda: _record_postgres(engine, run, status, http_status, error, retry_in)
        )
    return await _record_sqlite(engine, run, status, http_status, error, retry_in)


async def _record_postgres(
    engine: AsyncEngine,
    run: ClaimedRun,
    status: str,
    http_status: int | None,
    error: str | None,
    retry_in: float | None,
) -> bool:
    parameters: dict[str, Any] = {
        "b_run_id": run.id,
        "b_attempt": run.attempt,
        "b_status": status,
        "b_http_status": http_status,
        "b_error": error,
    }
    if status in FINAL:
        statement = FINAL_RECORD
        parameters |= {"b_scheduled_for": run.scheduled_for, "b_last_status": _last_status(status)}
    else:
        statement = RETRY_RECORD
        parameters["b_retry_in"] = timedelta(seconds=retry_in or 0)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        return (await connection.execute(statement, parameters)).first() is not None


async def _record_sqlite(
    engine: AsyncEngine,
    run: ClaimedRun,
    status: str,
    http_status: int | None,
    error: str | None,
    retry_in: float | None,
) -> bool:
    final = status in FINAL
    now = datetime.now(UTC)  # SQLite has no clock of its own in a comparable form
    retry_at = now + timedelta(seconds=retry_in or 0)
    values = _run_values(
        status, http_status, error, now if final else None, None if final else retry_at
    )
    async with engine.begin() as connection:
        written = await connection.execute(
            update(R).where(_ours(run.id, run.attempt)).values(**values)
        )
        if not written.rowcount:
            return False
        if final:
            outcome = _schedule_values(
                run.scheduled_for, _last_status(status), error, now, "sqlite"
            )
            await connection.execute(update(S).where(S.c.id == run.schedule_id).values(**outcome))
        return True


def _last_status(status: str) -> str:
    """KeeperHub's words for the outcome."""
    return "success" if status == "succeeded" else "error"


async def extend_lease(engine: AsyncEngine, run: ClaimedRun, lease: timedelta) -> bool:
    """Push the run's lease ``lease`` past now; False when the run is no longer ours."""
    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        if postgres:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        now: Any = func.now() if postgres else datetime.now(UTC)
        result = await connection.execute(
            update(R).where(_ours(run.id, run.attempt)).values(lease_until=now + lease)
        )
        if not postgres:
            await connection.commit()
        return bool(result.rowcount)


def _ours(run_id: Any, attempt: Any) -> Any:
    return (R.c.id == run_id) & (R.c.status == "running") & (R.c.attempts == attempt)


def _run_values(
    status: Any, http_status: Any, error: Any, finished_at: Any, next_attempt_at: Any
) -> dict[str, Any]:
    return {
        "status": status,
        "http_status": http_status,
        "error": error,
        "lease_until": None,
        "finished_at": finished_at,
        "next_attempt_at": next_attempt_at,
    }


def _schedule_values(
    scheduled_for: Any, last_status: Any, error: Any, now: Any, dialect: str
) -> dict[str, Any]:
    """run_count + 1 (KeeperHub keeps it as text), last_run_at, and last_status/last_error
    unless a later occurrence has already reported (outcomes may arrive out of order)."""
    newer = or_(S.c.last_status_for.is_(None), S.c.last_status_for <= scheduled_for)
    return {
        "run_count": _incremented_run_count(dialect),
        "last_run_at": case(
            (or_(S.c.last_run_at.is_(None), S.c.last_run_at < now), now), else_=S.c.last_run_at
        ),
        "last_status": case((newer, last_status), else_=S.c.last_status),
        "last_error": case((newer, error), else_=S.c.last_error),
        "last_status_for": case((newer, scheduled_for), else_=S.c.last_status_for),
    }


def _incremented_run_count(dialect: str) -> Any:
    count = func.coalesce(func.nullif(S.c.run_count, ""), "0")
    if dialect == "postgresql":
        numeric = count.op("~")("^[0-9]{1,18}$")
        return case((numeric, cast(cast(count, BigInteger) + 1, Text)), else_="1")
    numeric = count.op("NOT GLOB")("*[^0-9]*")
    return case((numeric, cast(cast(count, Integer) + 1, Text)), else_="1")


def _postgres_statements() -> tuple[Any, Any]:
    """The two PostgreSQL records, built once: the hot path only binds its parameters.

    A final outcome is one statement: the run's UPDATE as a CTE, and the schedule's UPDATE
    joined to it, so the schedule changes only if the run was still ours."""
    now = func.now()
    run_id, attempt = bindparam("b_run_id", type_=Text()), bindparam("b_attempt", type_=Integer())
    status = bindparam("b_status", type_=Text())
    http_status, error = (
        bindparam("b_http_status", type_=Integer()),
        bindparam("b_error", type_=Text()),
    )
    retry = (
        update(R)
        .where(_ours(run_id, attempt))
        .values(
            **_run_values(
                status, http_status, error, None, now + bindparam("b_retry_in", type_=Interval())
            )
        )
        .returning(R.c.id)
    )
    written = (
        update(R)
        .where(_ours(run_id, attempt))
        .values(**_run_values(status, http_status, error, now, None))
        .returning(R.c.schedule_id)
        .cte("written")
    )
    scheduled_for = bindparam("b_scheduled_for", type_=S.c.last_status_for.type)
    last_status = bindparam("b_last_status", type_=Text())
    final = (
        update(S)
        .where(S.c.id == written.c.schedule_id)
        .values(**_schedule_values(scheduled_for, last_status, error, now, "postgresql"))
        .returning(S.c.id)
    )
    return final, retry


FINAL_RECORD, RETRY_RECORD = _postgres_statements()
