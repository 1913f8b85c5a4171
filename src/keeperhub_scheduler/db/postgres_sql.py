"""The dispatcher's statements on PostgreSQL, as SQL text, named and kept together.

The dispatcher runs these thousands of times a minute, so they skip SQLAlchemy's per-statement
work: the text is built once, at import, and ``PostgresStore`` hands it to the driver.

* ``LOCK_DUE``: the claim's query (``statements.due_statement``, compiled once), read into
  ``DueSchedule`` tuples straight from the driver.
* ``INSERT_FIRES``, ``INSERT_RUNS``, ``ADVANCE``: the claim's writes. The values travel as one
  array per column and ``unnest`` turns them back into rows: one round trip and one plan for a
  batch of any size, where an ``executemany`` would pay one statement per row. A fire's columns
  that are the same for the whole batch (its kind, status, creation time and relay lease) travel
  once, as scalars.
* ``MARK_ENQUEUED``, ``RELEASE``: the relay's, the ids as one binary array; ``LEASE_PENDING``
  and ``COUNT_PENDING``, its leftover feed and the pass's outbox count.

The f-strings below only splice in the column constants and the vocabulary's statuses, never a
value (hence the noqa).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Interval, bindparam, func
from sqlalchemy.dialects import postgresql

from keeperhub_scheduler.db.statements import (
    count_pending_statement,
    due_statement,
    lease_pending_statement,
)
from keeperhub_scheduler.runs import RunKind, RunStatus

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _compiled(statement: Any) -> tuple[str, dict[str, Any]]:
    """The statement's SQL, and the values of the parameters it bound itself (the statuses)."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), {
        name: value for name, value in compiled.params.items() if value is not None
    }


LOCK_DUE, _ = _compiled(due_statement(bindparam("now"), bindparam("limit")))

# The relay's leftover feed and the pass's outbox count, with the database's clock: no round
# trip to read it first, and nothing for SQLAlchemy to build twice a pass. Executed with their
# ``..._PARAMETERS``, and for the feed ``limit`` and ``lease`` (a timedelta).
LEASE_PENDING, LEASE_PENDING_PARAMETERS = _compiled(
    lease_pending_statement(
        func.now(), bindparam("limit"), func.now() + bindparam("lease", type_=Interval)
    )
)
COUNT_PENDING, COUNT_PENDING_PARAMETERS = _compiled(count_pending_statement(func.now()))


# A fire's columns that differ from run to run (see ``new_runs.NewRuns``).
FIRE_COLUMNS: dict[str, str] = {
    "id": "text",
    "schedule_id": "text",
    "workflow_id": "text",
    "scheduled_for": "timestamptz",
    "due_at": "timestamptz",
}

# Every column of a whole run row (a skip row; see ``NewRuns.rows``).
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

# Every schedule the claim advances has exactly these values (see ``dispatcher.claim``).
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


_ON_CONFLICT = " ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING id"

INSERT_FIRES = (
    f"INSERT INTO schedule_runs ({', '.join(FIRE_COLUMNS)},"  # noqa: S608
    " kind, status, occurrences, created_at, relay_lease_until)"
    f" SELECT f.*, '{RunKind.SCHEDULE}', '{RunStatus.PENDING}', 1,"
    " CAST(%(created_at)s AS timestamptz), CAST(%(relay_lease_until)s AS timestamptz)"
    f" FROM unnest({_unnest(FIRE_COLUMNS)}) AS f{_ON_CONFLICT}"
)

INSERT_RUNS = (
    f"INSERT INTO schedule_runs ({', '.join(RUN_COLUMNS)})"  # noqa: S608
    f" SELECT * FROM unnest({_unnest(RUN_COLUMNS)}){_ON_CONFLICT}"
)

# No read-modify-write on any column: a concurrent writer's change to another column survives.
ADVANCE = (
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

MARK_ENQUEUED = f"""
UPDATE schedule_runs SET status = '{RunStatus.ENQUEUED}', enqueued_at = now(),
  relay_lease_until = NULL
WHERE id = ANY(%(ids)b) AND status = '{RunStatus.PENDING}'
RETURNING extract(epoch FROM enqueued_at - scheduled_for)::float8
"""  # noqa: S608

RELEASE = f"""
UPDATE schedule_runs SET relay_lease_until = NULL
WHERE id = ANY(%(ids)b) AND status = '{RunStatus.PENDING}'
"""  # noqa: S608
