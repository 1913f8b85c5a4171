"""The run store's statements on PostgreSQL, as SQL text, named and kept together.

The dispatcher and the executor run these thousands of times a minute, so they skip SQLAlchemy's
per-statement work (its compile cache, bind and result processing cost more CPU than the round
trip): the text is built once, at import, and ``PostgresStore`` hands it to the driver.

The dispatcher's:

* ``LOCK_DUE``: the claim's query (``statements.due_statement``, compiled once), read into
  ``DueSchedule`` tuples straight from the driver.
* ``INSERT_FIRES``, ``INSERT_RUNS``, ``ADVANCE``: the claim's writes. The values travel as one
  array per column and ``unnest`` turns them back into rows: one round trip and one plan for a
  batch of any size, where an ``executemany`` would pay one statement per row. A fire's columns
  that are the same for the whole batch (its kind, status, creation time and relay lease) travel
  once, as scalars.
* ``MARK_ENQUEUED``, ``RELEASE``: the relay's, the ids as one binary array; ``LEASE_PENDING``
  and ``COUNT_PENDING``, its leftover feed and the pass's outbox count.

The executor's (each for a batch of concurrent deliveries, see ``coalesce``):

* ``CLAIM_BATCH``: the claim of many runs, with their switched-off flags and the clock;
* ``RECORD_FINALS``: final outcomes, with their schedules' KeeperHub fields;
* ``RECORD_RETRY``: one retry's outcome.

Each ``X`` is executed with ``X_PARAMETERS`` (the values the statement binds itself: statuses,
NULLs, tolerances) merged with the caller's ``b_...`` values.

The f-strings below only splice in the column constants and the vocabulary's statuses, never a
value (hence the noqa).
"""

from __future__ import annotations

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
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, psycopg

from keeperhub_scheduler.db.statements import (
    claim_statement,
    count_pending_statement,
    due_statement,
    held_by,
    lease_pending_statement,
    outcome_values,
    schedule_outcome_values,
)
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules
from keeperhub_scheduler.runs import LastStatus, RunKind, RunStatus

_DIALECT = psycopg.dialect()  # type: ignore[no-untyped-call]


_GIVEN: set[str] = set()  # the names of every parameter a caller binds (``_given``)


def _given(name: str, type_: Any = None) -> Any:
    """A parameter the caller binds at each execution (not required at compile time)."""
    _GIVEN.add(name)
    return bindparam(name, type_=type_, required=False)


def _compiled(statement: Any) -> tuple[str, dict[str, Any]]:
    """The statement's SQL (its IN lists expanded), and the values of the parameters it bound
    itself: everything but the ``_given`` ones, which the caller binds."""
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(compiled), {
        name: value for name, value in compiled.params.items() if name not in _GIVEN
    }


LOCK_DUE, _ = _compiled(due_statement(_given("now"), _given("limit")))

# The relay's leftover feed and the pass's outbox count, with the database's clock: no round
# trip to read it first, and nothing for SQLAlchemy to build twice a pass. Executed with their
# ``..._PARAMETERS``, and for the feed ``limit`` and ``lease`` (a timedelta).
LEASE_PENDING, LEASE_PENDING_PARAMETERS = _compiled(
    lease_pending_statement(func.now(), _given("limit"), func.now() + _given("lease", Interval))
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

# Pending runs become enqueued; a run an executor claimed before its mark keeps its status. Each
# learns when the queue accepted it (``seconds_ago`` before the database's clock).
MARK_ENQUEUED = f"""
UPDATE schedule_runs AS run SET
  status = CASE WHEN run.status = '{RunStatus.PENDING}' THEN '{RunStatus.ENQUEUED}'
    ELSE run.status END,
  enqueued_at = now() - make_interval(secs => sent.seconds_ago),
  relay_lease_until = NULL
FROM unnest(%(ids)b::text[], %(seconds_ago)b::float8[]) AS sent(id, seconds_ago)
WHERE run.id = sent.id AND (run.status = '{RunStatus.PENDING}' OR run.enqueued_at IS NULL)
RETURNING extract(epoch FROM run.enqueued_at - run.scheduled_for)::float8
"""  # noqa: S608

RELEASE = f"""
UPDATE schedule_runs SET relay_lease_until = NULL
WHERE id = ANY(%(ids)b) AND status = '{RunStatus.PENDING}'
"""  # noqa: S608


# --- the executor's statements --------------------------------------------------------------------
def _text_array(name: str) -> Any:
    return _given(name, ARRAY(Text()))


def _claim_batch_statement() -> Any:
    """The claim of many runs at once, over arrays of their names, with the flags that say
    whether each may run and the clock they are read against. b_: names of columns are reserved
    in an UPDATE."""
    names = func.unnest(
        _text_array("b_run_ids"), _text_array("b_workflow_ids"), _text_array("b_schedule_ids")
    )
    named = names.table_valued("run_id", "workflow_id", "schedule_id").render_derived(name="m")
    statement = claim_statement(
        named.c.run_id, named.c.workflow_id, named.c.schedule_id, _given("b_lease", Interval()),
        func.now(), overlap_checked=False,
    )  # fmt: skip
    return statement.returning(func.now().label("now"))


def _incremented_run_count(finished: Any) -> Any:
    """run_count + ``finished`` (KeeperHub keeps it as text); a count its text column cannot
    parse starts again from these runs."""
    count = func.coalesce(func.nullif(workflow_schedules.c.run_count, ""), "0")
    numeric = count.op("~")("^[0-9]{1,18}$")
    return case(
        (numeric, cast(cast(count, BigInteger) + finished, Text)), else_=cast(finished, Text)
    )


def _record_finals_statement() -> Any:
    """Final outcomes of many runs, over arrays.

    ``written`` updates the runs still ours; ``latest`` gives each of their schedules its count
    of finished runs and its latest occurrence's outcome; ``locked`` takes those schedules' rows
    in id order (two batches never wait on each other's schedules crosswise); ``schedules``
    updates them. The statement returns the ids of the runs written.
    """
    now = func.now()
    outcomes = (
        func.unnest(
            _text_array("b_run_ids"),
            _given("b_attempts", ARRAY(Integer())),
            _text_array("b_statuses"),
            _given("b_http_statuses", ARRAY(Integer())),
            _text_array("b_errors"),
        )
        .table_valued("run_id", "attempt", "status", "http_status", "error")
        .render_derived(name="m")
    )
    m = outcomes.c
    runs = schedule_runs.c
    written = (
        update(schedule_runs)
        .where(held_by(m.run_id, m.attempt))
        .values(**outcome_values(m.status, m.http_status, m.error, now, None))
        .returning(runs.id, runs.schedule_id, runs.scheduled_for, runs.status, runs.error)
        .cte("written")
    )
    w = written.c
    succeeded = w.status == RunStatus.SUCCEEDED.value
    latest = (
        select(
            w.schedule_id, w.scheduled_for, w.error,
            case((succeeded, LastStatus.SUCCESS.value), else_=LastStatus.ERROR.value)
            .label("last_status"),
            func.count().over(partition_by=w.schedule_id).label("finished"),
        )
        .ext(distinct_on(w.schedule_id))
        .order_by(w.schedule_id, w.scheduled_for.desc())
        .cte("latest")
    )  # fmt: skip
    schedules = workflow_schedules.c
    locked = (
        select(schedules.id)
        .where(schedules.id.in_(select(latest.c.schedule_id)))
        .order_by(schedules.id)
        .with_for_update()
        .cte("locked")
    )
    values = schedule_outcome_values(
        latest.c.scheduled_for, latest.c.last_status, latest.c.error, now,
        _incremented_run_count(latest.c.finished),
    )  # fmt: skip
    updated = (
        update(workflow_schedules)
        .where(schedules.id == latest.c.schedule_id, schedules.id == locked.c.id)
        .values(**values)
        .cte("schedules")
    )
    return select(w.id).add_cte(updated)


def _record_retry_statement() -> Any:
    """A retry's outcome: the run due again ``b_retry_in`` from now."""
    retry_at = func.now() + _given("b_retry_in", Interval())
    values = outcome_values(
        _given("b_status", Text()), _given("b_http_status", Integer()),
        _given("b_error", Text()), None, retry_at,
    )  # fmt: skip
    return (
        update(schedule_runs)
        .where(held_by(_given("b_run_id", Text()), _given("b_attempt", Integer())))
        .values(**values)
        .returning(schedule_runs.c.id)
    )


CLAIM_BATCH, CLAIM_BATCH_PARAMETERS = _compiled(_claim_batch_statement())
RECORD_FINALS, RECORD_FINALS_PARAMETERS = _compiled(_record_finals_statement())
RECORD_RETRY, RECORD_RETRY_PARAMETERS = _compiled(_record_retry_statement())
