"""Recording an attempt: the run's outcome and, for a final one, its schedule's KeeperHub fields.

Every write is guarded by the attempt number the claim handed out (``status = 'running' AND
attempts = n``), so an executor whose lease lapsed and whose run was taken over cannot overwrite
the outcome of the one that took it. A final outcome updates the run and the schedule's
``last_run_at``, ``last_status``, ``last_error`` and ``run_count`` atomically, with no
read-modify-write: on PostgreSQL one autocommitted statement (a data-modifying CTE), on SQLite
two statements in one transaction. On PostgreSQL ``Records`` sends the final outcomes of
concurrent calls as one such statement over arrays, locking their schedules in id order (two
batches never wait on each other's schedules crosswise).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Interval,
    Text,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.coalesce import Coalescer
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.executor.database import once_more_if_disconnected
from keeperhub_scheduler.runs import ClaimedRun

log = logging.getLogger("keeperhub_scheduler.executor")

R = schedule_runs
S = workflow_schedules
FINAL = ("succeeded", "failed", "dead")
BATCH_LIMIT = 10


class Records:
    """The outcomes one executor writes. On PostgreSQL, final outcomes submitted together go
    out as one statement (see ``coalesce``); retries, and everything on SQLite, one by one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._batches: Coalescer[Outcome, bool] | None = None
        if engine.dialect.name == "postgresql":
            self._batches = Coalescer(self._record_batch, limit=BATCH_LIMIT)

    async def record(
        self,
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
        outcome = Outcome(run.run_id, run.attempt, status, http_status, error)
        if self._batches is not None and status in FINAL:
            try:
                return await self._batches.submit(outcome)
            except DBAPIError as error_:
                # Rare (a deadlock between batches, say): write this outcome alone below, which
                # raises if the database is down (the caller tries again, patiently).
                log.warning("batched record failed; recording alone", extra={"error": str(error_)})
        if self.engine.dialect.name == "postgresql":
            return await once_more_if_disconnected(
                lambda: _record_postgres(self.engine, outcome, retry_in)
            )
        return await _record_sqlite(self.engine, run, outcome, retry_in)

    async def _record_batch(self, batch: list[Outcome]) -> list[bool]:
        written = await once_more_if_disconnected(lambda: _write_finals(self.engine, batch))
        return [outcome.run_id in written for outcome in batch]


@dataclass(frozen=True)
class Outcome:
    """The outcome of one attempt (final ones as the batched statement takes them)."""

    run_id: str
    attempt: int
    status: str
    http_status: int | None
    error: str | None


async def _write_finals(engine: AsyncEngine, outcomes: list[Outcome]) -> set[str]:
    """The run ids whose outcome was written (the others are no longer ours)."""
    parameters = {
        "b_run_ids": [outcome.run_id for outcome in outcomes],
        "b_attempts": [outcome.attempt for outcome in outcomes],
        "b_statuses": [outcome.status for outcome in outcomes],
        "b_http_statuses": [outcome.http_status for outcome in outcomes],
        "b_errors": [outcome.error for outcome in outcomes],
    }
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        return {row.id for row in await connection.execute(FINAL_RECORD, parameters)}


async def _record_postgres(engine: AsyncEngine, outcome: Outcome, retry_in: float | None) -> bool:
    if outcome.status in FINAL:
        return outcome.run_id in await _write_finals(engine, [outcome])
    parameters: dict[str, Any] = {
        "b_run_id": outcome.run_id,
        "b_attempt": outcome.attempt,
        "b_status": outcome.status,
        "b_http_status": outcome.http_status,
        "b_error": outcome.error,
        "b_retry_in": timedelta(seconds=retry_in or 0),
    }
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        return (await connection.execute(RETRY_RECORD, parameters)).first() is not None


async def _record_sqlite(
    engine: AsyncEngine, run: ClaimedRun, outcome: Outcome, retry_in: float | None
) -> bool:
    status, error = outcome.status, outcome.error
    final = status in FINAL
    now = datetime.now(UTC)  # SQLite has no clock of its own in a comparable form
    retry_at = now + timedelta(seconds=retry_in or 0)
    values = _run_values(
        status, outcome.http_status, error, now if final else None, None if final else retry_at
    )
    async with engine.begin() as connection:
        written = await connection.execute(
            update(R).where(_ours(run.run_id, run.attempt)).values(**values)
        )
        if not written.rowcount:
            return False
        if final:
            latest = _schedule_values(run.scheduled_for, _last_status(status), error, now, "sqlite")
            await connection.execute(update(S).where(S.c.id == run.schedule_id).values(**latest))
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
            update(R).where(_ours(run.run_id, run.attempt)).values(lease_until=now + lease)
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
    scheduled_for: Any, last_status: Any, error: Any, now: Any, dialect: str, finished: Any = 1
) -> dict[str, Any]:
    """run_count + ``finished`` (KeeperHub keeps it as text), last_run_at, and
    last_status/last_error unless a later occurrence has already reported (outcomes may arrive
    out of order)."""
    newer = or_(S.c.last_status_for.is_(None), S.c.last_status_for <= scheduled_for)
    return {
        "run_count": _incremented_run_count(dialect, finished),
        "last_run_at": case(
            (or_(S.c.last_run_at.is_(None), S.c.last_run_at < now), now), else_=S.c.last_run_at
        ),
        "last_status": case((newer, last_status), else_=S.c.last_status),
        "last_error": case((newer, error), else_=S.c.last_error),
        "last_status_for": case((newer, scheduled_for), else_=S.c.last_status_for),
    }


def _incremented_run_count(dialect: str, finished: Any) -> Any:
    """A count KeeperHub's text column cannot parse starts again from these runs."""
    count = func.coalesce(func.nullif(S.c.run_count, ""), "0")
    if dialect == "postgresql":
        numeric = count.op("~")("^[0-9]{1,18}$")
        return case(
            (numeric, cast(cast(count, BigInteger) + finished, Text)), else_=cast(finished, Text)
        )
    numeric = count.op("NOT GLOB")("*[^0-9]*")
    return case((numeric, cast(cast(count, Integer) + finished, Text)), else_=cast(finished, Text))


def _final_statement() -> Any:
    """Final outcomes of many runs, over arrays; built once (the hot path only binds).

    ``written`` updates the runs still ours; ``latest`` gives each of their schedules its count
    of finished runs and its latest occurrence's outcome; ``locked`` takes those schedules' rows
    in id order; ``schedules`` updates them. The statement returns the ids of the runs written.
    """
    now = func.now()
    outcomes = (
        func.unnest(
            bindparam("b_run_ids", type_=ARRAY(Text())),
            bindparam("b_attempts", type_=ARRAY(Integer())),
            bindparam("b_statuses", type_=ARRAY(Text())),
            bindparam("b_http_statuses", type_=ARRAY(Integer())),
            bindparam("b_errors", type_=ARRAY(Text())),
        )
        .table_valued("run_id", "attempt", "status", "http_status", "error")
        .render_derived(name="m")
    )
    m = outcomes.c
    written = (
        update(R)
        .where(_ours(m.run_id, m.attempt))
        .values(**_run_values(m.status, m.http_status, m.error, now, None))
        .returning(R.c.id, R.c.schedule_id, R.c.scheduled_for, R.c.status, R.c.error)
        .cte("written")
    )
    w = written.c
    latest = (
        select(
            w.schedule_id, w.scheduled_for, w.error,
            case((w.status == "succeeded", "success"), else_="error").label("last_status"),
            func.count().over(partition_by=w.schedule_id).label("finished"),
        )
        .ext(distinct_on(w.schedule_id))
        .order_by(w.schedule_id, w.scheduled_for.desc())
        .cte("latest")
    )  # fmt: skip
    locked = (
        select(S.c.id)
        .where(S.c.id.in_(select(latest.c.schedule_id)))
        .order_by(S.c.id)
        .with_for_update()
        .cte("locked")
    )
    values = _schedule_values(
        latest.c.scheduled_for, latest.c.last_status, latest.c.error, now, "postgresql",
        latest.c.finished,
    )  # fmt: skip
    schedules = (
        update(S)
        .where(S.c.id == latest.c.schedule_id, S.c.id == locked.c.id)
        .values(**values)
        .cte("schedules")
    )
    return select(w.id).add_cte(schedules)


def _retry_statement() -> Any:
    """A retry's outcome: the run due again ``b_retry_in`` from now; built once."""
    now = func.now()
    run_id, attempt = bindparam("b_run_id", type_=Text()), bindparam("b_attempt", type_=Integer())
    status = bindparam("b_status", type_=Text())
    http_status, error = (
        bindparam("b_http_status", type_=Integer()),
        bindparam("b_error", type_=Text()),
    )
    retry_at = now + bindparam("b_retry_in", type_=Interval())
    return (
        update(R)
        .where(_ours(run_id, attempt))
        .values(**_run_values(status, http_status, error, None, retry_at))
        .returning(R.c.id)
    )


FINAL_RECORD = _final_statement()
RETRY_RECORD = _retry_statement()
