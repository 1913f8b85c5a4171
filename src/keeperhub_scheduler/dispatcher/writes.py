"""The claim's writes: every run and every schedule of a batch in one statement each.

On PostgreSQL the values travel as one array per column and ``unnest`` turns them back into rows:
one round trip and one plan for a batch of any size, where an ``executemany`` would pay one
statement per row. SQLite (the embedded mode) has no arrays and takes the portable statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, case, func, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules

S = workflow_schedules
R = schedule_runs

# Every run the claim writes has exactly these columns (see ``claim._run``).
RUN_COLUMNS: dict[str, str] = {
    "id": "text",
    "schedule_id": "text",
    "workflow_id": "text",
    "kind": "text",
    "scheduled_for": "timestamptz",
    "scheduled_until": "timestamptz",
    "occurrences": "integer",
    "due_at": "timestamptz",
    "status": "text",
    "skip_reason": "text",
    "created_at": "timestamptz",
    "finished_at": "timestamptz",
    "relay_lease_until": "timestamptz",
}

# Every schedule the claim advances has exactly these values (see ``claim._advance``).
ADVANCE_COLUMNS: dict[str, str] = {
    "b_id": "text",
    "b_next_run_at": "timestamptz",
    "b_decided_through": "timestamptz",
    "b_plan_key": "text",
    "b_last_fired": "timestamptz",
    "b_pause_ended": "boolean",
}


def _unnest(columns: dict[str, str]) -> str:
    # %(name)b: psycopg sends the list as a binary array, many times cheaper to build than text.
    return ", ".join(f"CAST(%({name})b AS {kind}[])" for name, kind in columns.items())


# The f-strings below only splice in the column constants above, never a value (hence the noqa).
_PG_INSERT_RUNS = (
    f"INSERT INTO schedule_runs ({', '.join(RUN_COLUMNS)})"  # noqa: S608
    f" SELECT * FROM unnest({_unnest(RUN_COLUMNS)})"
    " ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING id"
)

# No read-modify-write on any column: a concurrent writer's change to another column survives.
_PG_ADVANCE = (
    "UPDATE workflow_schedules AS s SET"  # noqa: S608
    " next_run_at = v.b_next_run_at,"
    " decided_through = v.b_decided_through,"
    " plan_key = v.b_plan_key,"
    " last_run_at = coalesce(v.b_last_fired, s.last_run_at),"
    " paused_at = CASE WHEN v.b_pause_ended THEN NULL ELSE s.paused_at END,"
    " paused_until = CASE WHEN v.b_pause_ended THEN NULL ELSE s.paused_until END,"
    " paused_note = CASE WHEN v.b_pause_ended THEN NULL ELSE s.paused_note END"
    f" FROM unnest({_unnest(ADVANCE_COLUMNS)}) AS v({', '.join(ADVANCE_COLUMNS)})"
    " WHERE s.id = v.b_id"
)

_PORTABLE_ADVANCE = (
    update(S)
    .where(S.c.id == bindparam("b_id"))
    .values(
        next_run_at=bindparam("b_next_run_at"),
        decided_through=bindparam("b_decided_through"),
        plan_key=bindparam("b_plan_key"),
        last_run_at=func.coalesce(
            bindparam("b_last_fired", type_=S.c.last_run_at.type), S.c.last_run_at
        ),
        paused_at=case((bindparam("b_pause_ended"), None), else_=S.c.paused_at),
        paused_until=case((bindparam("b_pause_ended"), None), else_=S.c.paused_until),
        paused_note=case((bindparam("b_pause_ended"), None), else_=S.c.paused_note),
    )
)


def _columns(rows: Sequence[dict[str, Any]], names: dict[str, str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


async def insert_runs(connection: AsyncConnection, runs: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the runs; one that already exists for its occurrence is left alone (the dedup).

    Returns the ids that were inserted on PostgreSQL; SQLite does not say (an empty set).
    """
    if not runs:
        return set()
    if connection.dialect.name == "postgresql":
        result = await connection.exec_driver_sql(_PG_INSERT_RUNS, _columns(runs, RUN_COLUMNS))
        return {row[0] for row in result.all()}
    statement = sqlite.insert(R).on_conflict_do_nothing(
        index_elements=[R.c.schedule_id, R.c.scheduled_for]
    )
    await connection.execute(statement, list(runs))
    return set()


async def advance_schedules(
    connection: AsyncConnection, advances: Sequence[dict[str, Any]]
) -> None:
    """Write each claimed schedule's new plan: next_run_at, decided_through, plan_key, ..."""
    if not advances:
        return
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(_PG_ADVANCE, _columns(advances, ADVANCE_COLUMNS))
        return
    await connection.execute(_PORTABLE_ADVANCE, list(advances))
