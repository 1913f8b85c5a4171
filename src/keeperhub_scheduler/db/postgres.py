"""PostgreSQL's statements of the run store: the hot paths, each one round trip for a batch.

* The dispatcher's claim and relay: the SQL text of ``postgres_sql``, handed to the driver (the
  due rows read into tuples without SQLAlchemy's rows, the writes as one array per column).
* The executor's ``claim``: one autocommitted UPDATE with the flags joined in and the clock read
  from ``now()``; the claims of concurrent deliveries (the ten of one receive, say) go out as one
  such statement over arrays of run ids (see ``coalesce``). Runs of schedules whose overlap policy
  is ``skip`` take the transactional path, where the schedule row is locked so that two runs of it
  claimed at once see each other; so does every refusal (which needs to know why).
* The executor's ``record``: a final outcome updates the run and its schedule in one
  autocommitted statement (a data-modifying CTE), and the final outcomes of concurrent calls go
  out as one such statement over arrays, locking their schedules in id order (two batches never
  wait on each other's schedules crosswise).

The statements the hot paths run are SQL text from ``postgres_sql``, built once at import and
handed to the driver: the hot path only binds parameters (building, keying and processing a
statement through SQLAlchemy per call cost more CPU than running it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keeperhub_scheduler.coalesce import Coalescer
from keeperhub_scheduler.db import postgres_sql as sql
from keeperhub_scheduler.db.engine import executor_log, once_more_if_disconnected
from keeperhub_scheduler.db.listen import DueListener
from keeperhub_scheduler.db.new_runs import NewRuns
from keeperhub_scheduler.db.statements import (
    DueSchedule,
    claim_statement,
    claimed_run,
    held_by,
    run_ref,
    switched_off,
)
from keeperhub_scheduler.db.store import Outcome, Refusal, RunStore, Skipped
from keeperhub_scheduler.db.tables import schedule_runs
from keeperhub_scheduler.db.urls import libpq_url
from keeperhub_scheduler.runs import FINAL_OUTCOMES, ClaimedRun, RunRef

CLAIMS_PER_STATEMENT = 10  # runs one claim statement takes at most
OUTCOMES_PER_STATEMENT = 10  # final outcomes one record statement writes at most
# How long a batch of final outcomes waits for one more (the calls of one receive answer
# milliseconds apart; ``coalesce``: at most four times this from the first) so that they are
# written by one statement; the heartbeat holds the runs meanwhile.
OUTCOME_LINGER_SECONDS = 0.005


def _columns(rows: Sequence[dict[str, Any]], names: dict[str, str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


def _due_schedules(_cursor: Any) -> Callable[[Sequence[Any]], DueSchedule]:
    return DueSchedule._make


class PostgresStore(RunStore):
    knows_inserted = True

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._claim_batches: dict[timedelta, Coalescer[RunRef, Any]] = {}
        self._final_batches: Coalescer[Outcome, bool] = Coalescer(
            self._record_batch, limit=OUTCOMES_PER_STATEMENT, linger=OUTCOME_LINGER_SECONDS
        )

    def insert(self, table: Any) -> Any:
        return postgresql.insert(table)

    @contextlib.asynccontextmanager
    async def _autocommitted(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose every statement commits on its own: a one-statement write or
        read is one round trip, where a transaction adds a BEGIN and a COMMIT (or ROLLBACK)."""
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    def due_listener(self) -> DueListener:
        return DueListener(libpq_url(self.engine.url.render_as_string(hide_password=False)))

    # --- the dispatcher's claim -----------------------------------------------------------
    async def lock_due(
        self, connection: AsyncConnection, now: datetime, limit: int
    ) -> list[DueSchedule]:
        # Straight from the driver into tuples: SQLAlchemy's rows cost more per field read than
        # deciding the schedule (our sessions speak UTC, so the instants need no converting).
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None  # a connection checked out for this transaction
        async with driver.cursor(row_factory=_due_schedules) as cursor:
            await cursor.execute(sql.LOCK_DUE, {"now": now, "limit": limit})
            rows: list[DueSchedule] = await cursor.fetchall()
            return rows

    async def insert_runs(self, connection: AsyncConnection, runs: NewRuns) -> set[str]:
        inserted: set[str] = set()
        if runs.ids:
            fires = {
                "id": runs.ids,
                "schedule_id": runs.schedule_ids,
                "workflow_id": runs.workflow_ids,
                "scheduled_for": runs.scheduled_for,
                "due_at": runs.due_at,
                "created_at": runs.created_at,
                "relay_lease_until": runs.relay_lease_until,
            }
            # The new runs' ids straight from the driver, as the due rows are (see lock_due).
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None  # a connection checked out for this transaction
            async with driver.cursor() as cursor:
                await cursor.execute(sql.INSERT_FIRES, fires)
                inserted = {row[0] for row in await cursor.fetchall()}
        if runs.skips:
            columns = _columns(runs.skips, sql.RUN_COLUMNS)
            await connection.exec_driver_sql(sql.INSERT_RUNS, columns)
        return inserted

    async def advance_schedules(
        self, connection: AsyncConnection, advances: Sequence[dict[str, Any]]
    ) -> None:
        if advances:
            await connection.exec_driver_sql(sql.ADVANCE, _columns(advances, sql.ADVANCE_COLUMNS))

    # --- the relay ------------------------------------------------------------------------
    async def mark_enqueued(
        self, run_ids: Sequence[str], seconds_ago: Sequence[float]
    ) -> list[float]:
        if not run_ids:
            return []
        # The lag as one float per run: parsing two timestamps per run cost more CPU here.
        parameters = {"ids": list(run_ids), "seconds_ago": list(seconds_ago)}
        rows = await self._one_statement(sql.MARK_ENQUEUED, parameters)
        return [row[0] for row in rows]

    async def lease_pending(self, limit: int, lease: timedelta) -> list[RunRef]:
        parameters = sql.LEASE_PENDING_PARAMETERS | {"limit": limit, "lease": lease}
        return [run_ref(row) for row in await self._one_statement(sql.LEASE_PENDING, parameters)]

    async def count_pending(self) -> tuple[int, int]:
        [counts] = await self._one_statement(sql.COUNT_PENDING, sql.COUNT_PENDING_PARAMETERS)
        return int(counts[0]), int(counts[1])

    async def release(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._one_statement(sql.RELEASE, {"ids": list(run_ids)})

    async def _one_statement(self, statement: str, parameters: dict[str, Any]) -> list[Any]:
        """Run one autocommitted statement (once more if its connection had died); the rows it
        returns, if any."""

        async def run() -> list[Any]:
            async with self._autocommitted() as connection:
                result = await connection.exec_driver_sql(statement, parameters)
                return list(result) if result.returns_rows else []

        return await once_more_if_disconnected(run)

    # --- the executor's claim -------------------------------------------------------------
    async def claim(self, run: RunRef, lease: timedelta) -> ClaimedRun | Skipped | Refusal:
        started = time.monotonic()
        try:
            taken = await self._claims(lease).submit(run)
        except DBAPIError as error:
            # Rare (a deadlock between two batches taking over the same runs, say): the
            # transactional path claims this run alone, or raises if the database is down.
            executor_log.warning(
                "batched claim failed; claiming alone", extra={"error": str(error)}
            )
            taken = None
        if taken is None:
            return await super().claim(run, lease)
        claimed = claimed_run(taken)
        reason = switched_off(taken, taken.now)
        if reason is None:
            return await self._still_held(claimed, started, lease)
        await self.skip_claimed(claimed, reason)
        return Skipped(claimed, reason)

    def _claims(self, lease: timedelta) -> Coalescer[RunRef, Any]:
        batches = self._claim_batches.get(lease)
        if batches is None:
            batch = partial(self._claim_batch, lease)
            batches = Coalescer(batch, limit=CLAIMS_PER_STATEMENT)
            self._claim_batches[lease] = batches
        return batches

    async def _claim_batch(self, lease: timedelta, batch: list[RunRef]) -> list[Any]:
        """One row per run: the claimed run with its flags, or None (not claimed here)."""
        run_ids = [run.run_id for run in batch]
        parameters = sql.CLAIM_BATCH_PARAMETERS | {
            "b_run_ids": run_ids,
            "b_workflow_ids": [run.workflow_id for run in batch],
            "b_schedule_ids": [run.schedule_id for run in batch],
            "b_lease": lease,
        }

        async def execute() -> list[Any]:
            async with self._autocommitted() as connection:
                return list(await connection.exec_driver_sql(sql.CLAIM_BATCH, parameters))

        rows = {row.id: row for row in await once_more_if_disconnected(execute)}
        # A run named twice in one batch (a duplicate delivery) was claimed once: the first
        # item gets the row, the other finds the run held and is refused on the slow path.
        return [rows.pop(run_id, None) for run_id in run_ids]

    async def _claim_row(
        self, connection: AsyncConnection, run: RunRef, now: Any, lease: timedelta
    ) -> Any:
        names = (run.run_id, run.workflow_id, run.schedule_id)
        statement = claim_statement(*names, lease, now, overlap_checked=True)
        return (await connection.execute(statement)).first()

    async def extend_lease(self, run: ClaimedRun, lease: timedelta) -> bool:
        async with self._autocommitted() as connection:
            result = await connection.execute(
                update(schedule_runs)
                .where(held_by(run.run_id, run.attempt))
                .values(lease_until=func.now() + lease)
            )
            return bool(result.rowcount)

    # --- the executor's record ------------------------------------------------------------
    async def _record(self, run: ClaimedRun, outcome: Outcome, retry_in: float | None) -> bool:
        if outcome.status in FINAL_OUTCOMES:
            try:
                return await self._final_batches.submit(outcome)
            except DBAPIError as error_:
                # Rare (a deadlock between batches, say): write this outcome alone below, which
                # raises if the database is down (the caller tries again, patiently).
                executor_log.warning(
                    "batched record failed; recording alone", extra={"error": str(error_)}
                )
            written = await once_more_if_disconnected(lambda: self._write_finals([outcome]))
            return outcome.run_id in written
        parameters = sql.RECORD_RETRY_PARAMETERS | {
            "b_run_id": outcome.run_id,
            "b_attempt": outcome.attempt,
            "b_status": outcome.status,
            "b_http_status": outcome.http_status,
            "b_error": outcome.error,
            "b_retry_in": timedelta(seconds=retry_in or 0),
        }

        async def retry() -> bool:
            async with self._autocommitted() as connection:
                result = await connection.exec_driver_sql(sql.RECORD_RETRY, parameters)
                return result.first() is not None

        return await once_more_if_disconnected(retry)

    async def _record_batch(self, batch: list[Outcome]) -> list[bool]:
        written = await once_more_if_disconnected(lambda: self._write_finals(batch))
        return [outcome.run_id in written for outcome in batch]

    async def _write_finals(self, outcomes: list[Outcome]) -> set[str]:
        """The run ids whose outcome was written (the others are no longer ours)."""
        parameters = sql.RECORD_FINALS_PARAMETERS | {
            "b_run_ids": [outcome.run_id for outcome in outcomes],
            "b_attempts": [outcome.attempt for outcome in outcomes],
            "b_statuses": [outcome.status for outcome in outcomes],
            "b_http_statuses": [outcome.http_status for outcome in outcomes],
            "b_errors": [outcome.error for outcome in outcomes],
        }
        async with self._autocommitted() as connection:
            result = await connection.exec_driver_sql(sql.RECORD_FINALS, parameters)
            return set(result.scalars())
