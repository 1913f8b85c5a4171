"""SQLite's statements of the run store (the embedded mode): the portable forms, one row at a time.

SQLite has no arrays, and its ``RETURNING`` names only the updated table: the claim reads the
flags in a second statement of the same transaction, and a final outcome updates the run and its
schedule in two statements of one transaction. Its clock is ours (``database_now``), in one fixed
UTC form.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Integer, Text, bindparam, case, cast, func, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.new_runs import NewRuns
from keeperhub_scheduler.db.statements import (
    FLAGS,
    claim_statement,
    held_by,
    keeperhub_last_status,
    outcome_values,
    schedule_outcome_values,
)
from keeperhub_scheduler.db.store import Outcome, RunStore
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.runs import FINAL_OUTCOMES, ClaimedRun, RunRef, RunStatus

_schedules = workflow_schedules.c
_ADVANCE = (
    update(workflow_schedules)
    .where(_schedules.id == bindparam("b_id"))
    .values(
        next_run_at=bindparam("b_next_run_at"),
        decided_through=bindparam("b_decided_through"),
        plan_key=bindparam("b_plan_key"),
        last_run_at=func.coalesce(
            bindparam("b_last_fired", type_=_schedules.last_run_at.type), _schedules.last_run_at
        ),
        paused_at=case((bindparam("b_pause_ended"), None), else_=_schedules.paused_at),
        paused_until=case((bindparam("b_pause_ended"), None), else_=_schedules.paused_until),
        paused_note=case((bindparam("b_pause_ended"), None), else_=_schedules.paused_note),
    )
)


class SqliteStore(RunStore):
    knows_inserted = False  # an INSERT ... ON CONFLICT DO NOTHING does not say which it skipped

    def insert(self, table: Any) -> Any:
        return sqlite.insert(table)

    # --- the dispatcher's claim -----------------------------------------------------------
    async def insert_runs(self, connection: AsyncConnection, runs: NewRuns) -> set[str]:
        if runs:
            statement = sqlite.insert(schedule_runs).on_conflict_do_nothing(
                index_elements=[schedule_runs.c.schedule_id, schedule_runs.c.scheduled_for]
            )
            await connection.execute(statement, runs.rows())
        return set()

    async def advance_schedules(
        self, connection: AsyncConnection, advances: Sequence[dict[str, Any]]
    ) -> None:
        if advances:
            await connection.execute(_ADVANCE, list(advances))

    # --- the relay ------------------------------------------------------------------------
    async def mark_enqueued(
        self, run_ids: Sequence[str], seconds_ago: Sequence[float]
    ) -> list[float]:
        # One UPDATE per instant of acceptance (the relay's runs come in sent batches of ten).
        sent_at: dict[float, list[str]] = {}
        for run_id, ago in zip(run_ids, seconds_ago, strict=True):
            sent_at.setdefault(ago, []).append(run_id)
        runs = schedule_runs.c
        lags: list[float] = []
        async with self.engine.begin() as connection:
            now = await database_now(connection)
            for ago, ids in sent_at.items():
                result = await connection.execute(
                    update(schedule_runs)
                    .where(
                        runs.id.in_(ids),
                        or_(runs.status == RunStatus.PENDING, runs.enqueued_at.is_(None)),
                    )
                    .values(
                        status=case(
                            (runs.status == RunStatus.PENDING, RunStatus.ENQUEUED),
                            else_=runs.status,
                        ),
                        enqueued_at=now - timedelta(seconds=ago),
                        relay_lease_until=None,
                    )
                    .returning(runs.scheduled_for, runs.enqueued_at)
                )
                lags += [(enqueued - scheduled).total_seconds() for scheduled, enqueued in result]
        return lags

    async def release(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        runs = schedule_runs.c
        async with self.engine.begin() as connection:
            await connection.execute(
                update(schedule_runs)
                .where(runs.id.in_(run_ids), runs.status == RunStatus.PENDING)
                .values(relay_lease_until=None)
            )

    # --- the executor -----------------------------------------------------------------------
    async def _claim_row(
        self, connection: AsyncConnection, run: RunRef, now: datetime, lease: timedelta
    ) -> Any:
        names = (run.run_id, run.workflow_id, run.schedule_id)
        statement = claim_statement(*names, lease, now, overlap_checked=True, joined=False)
        row = (await connection.execute(statement)).first()
        if row is None:
            return None
        flags_query = (
            select(*FLAGS)
            .join(workflows, workflows.c.id == _schedules.workflow_id)
            .where(_schedules.id == row.schedule_id)
        )
        flags = (await connection.execute(flags_query)).one()
        return SimpleNamespace(**row._mapping, **flags._mapping)

    async def extend_lease(self, run: ClaimedRun, lease: timedelta) -> bool:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(schedule_runs)
                .where(held_by(run.run_id, run.attempt))
                .values(lease_until=datetime.now(UTC) + lease)
            )
            return bool(result.rowcount)

    async def _record(self, run: ClaimedRun, outcome: Outcome, retry_in: float | None) -> bool:
        status, http_status, error = outcome.status, outcome.http_status, outcome.error
        final = status in FINAL_OUTCOMES
        now = datetime.now(UTC)  # SQLite has no clock of its own in a comparable form
        retry_at = now + timedelta(seconds=retry_in or 0)
        values = outcome_values(
            status, http_status, error, now if final else None, None if final else retry_at
        )
        async with self.engine.begin() as connection:
            written = await connection.execute(
                update(schedule_runs).where(held_by(run.run_id, run.attempt)).values(**values)
            )
            if not written.rowcount:
                return False
            if final:
                latest = schedule_outcome_values(
                    run.scheduled_for,
                    keeperhub_last_status(status),
                    error,
                    now,
                    _incremented_run_count(),
                )
                await connection.execute(
                    update(workflow_schedules)
                    .where(_schedules.id == run.schedule_id)
                    .values(**latest)
                )
            return True


def _incremented_run_count() -> Any:
    """run_count + 1 (KeeperHub keeps it as text); a count its text column cannot parse starts
    again from this run."""
    count = func.coalesce(func.nullif(_schedules.run_count, ""), "0")
    numeric = count.op("NOT GLOB")("*[^0-9]*")
    return case((numeric, cast(cast(count, Integer) + 1, Text)), else_=cast(1, Text))
