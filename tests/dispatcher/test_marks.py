"""Marking sent runs enqueued: each run keeps the instant the queue accepted it, however late the
relay writes the mark (it groups marks, one UPDATE for many runs), and a run an executor claimed
before its mark keeps its status but still learns when it was sent.

The same rules hold for PostgreSQL's array statement and SQLite's portable ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import database_now
from keeperhub_scheduler.db.tables import schedule_runs, workflow_schedules, workflows
from keeperhub_scheduler.dispatcher.stream import RelayStream
from keeperhub_scheduler.runs import RunRef, new_run_id
from keeperhub_scheduler.transport.base import OutgoingMessage
from keeperhub_scheduler.transport.database import DatabaseTransport

OCCURRENCE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOLERANCE = timedelta(milliseconds=500)  # a slow machine's round trips, not the marks' delay


@pytest.fixture
async def engine(any_engine: AsyncEngine) -> AsyncEngine:
    """PostgreSQL's or SQLite's, with one workflow and one schedule."""
    async with any_engine.begin() as connection:
        await connection.execute(insert(workflows).values(id="wf", name="wf", enabled=True))
        await connection.execute(
            insert(workflow_schedules).values(id="s", workflow_id="wf", cron_expression="* * * * *")
        )
    return any_engine


async def add_run(engine: AsyncEngine, minute: int, status: str = "pending") -> RunRef:
    run = RunRef(
        run_id=new_run_id(),
        workflow_id="wf",
        schedule_id="s",
        scheduled_for=OCCURRENCE + timedelta(minutes=minute),
    )
    async with engine.begin() as connection:
        await connection.execute(
            insert(schedule_runs).values(
                id=run.run_id,
                schedule_id="s",
                workflow_id="wf",
                kind="schedule",
                scheduled_for=run.scheduled_for,
                due_at=run.scheduled_for,
                status=status,
                created_at=await database_now(connection),
            )
        )
    return run


async def row(engine: AsyncEngine, run_id: str) -> dict[str, object]:
    async with engine.connect() as connection:
        found = await connection.execute(select(schedule_runs).where(schedule_runs.c.id == run_id))
        return dict(found.one()._mapping)


async def now_of(engine: AsyncEngine) -> datetime:
    async with engine.connect() as connection:
        return await database_now(connection)


async def test_a_mark_records_when_the_queue_accepted_each_run_not_when_it_was_written(
    engine: AsyncEngine,
) -> None:
    early, late = await add_run(engine, 0), await add_run(engine, 1)

    lags = await store_for(engine).mark_enqueued([early.run_id, late.run_id], [30.0, 2.0])

    now = await now_of(engine)
    marked_early, marked_late = await row(engine, early.run_id), await row(engine, late.run_id)
    assert (marked_early["status"], marked_late["status"]) == ("enqueued", "enqueued")
    assert abs(marked_early["enqueued_at"] - (now - timedelta(seconds=30))) < TOLERANCE  # type: ignore[operator]
    assert abs(marked_late["enqueued_at"] - (now - timedelta(seconds=2))) < TOLERANCE  # type: ignore[operator]
    expected = [
        (marked["enqueued_at"] - marked["scheduled_for"]).total_seconds()  # type: ignore[operator]
        for marked in (marked_early, marked_late)
    ]
    assert sorted(lags) == pytest.approx(sorted(expected), abs=0.001)
    assert marked_early["relay_lease_until"] is None


async def test_a_run_claimed_before_its_mark_keeps_its_status_and_learns_when_it_was_sent(
    engine: AsyncEngine,
) -> None:
    run = await add_run(engine, 0)
    claimed = await store_for(engine).claim(run, timedelta(seconds=30))  # a fast executor
    assert (await row(engine, run.run_id))["status"] == "running", claimed

    await store_for(engine).mark_enqueued([run.run_id], [0.5])

    marked = await row(engine, run.run_id)
    assert marked["status"] == "running"
    assert marked["attempts"] == 1
    assert abs(marked["enqueued_at"] - await now_of(engine)) < TOLERANCE + timedelta(seconds=0.5)  # type: ignore[operator]


async def test_a_run_already_marked_and_claimed_keeps_the_instant_it_was_first_sent(
    engine: AsyncEngine,
) -> None:
    run = await add_run(engine, 0)
    store = store_for(engine)
    await store.mark_enqueued([run.run_id], [0.0])
    first = (await row(engine, run.run_id))["enqueued_at"]
    await store.claim(run, timedelta(seconds=30))

    # A second delivery's mark (another dispatcher sent it again after its lease lapsed).
    assert await store.mark_enqueued([run.run_id], [0.0]) == []
    again = await row(engine, run.run_id)
    assert (again["status"], again["enqueued_at"]) == ("running", first)


async def test_a_pending_run_sent_again_learns_the_later_instant(engine: AsyncEngine) -> None:
    run = await add_run(engine, 0)
    store = store_for(engine)
    await store.mark_enqueued([run.run_id], [60.0])
    async with engine.begin() as connection:  # the sweep put it back: its message was lost
        await connection.execute(
            update(schedule_runs).where(schedule_runs.c.id == run.run_id).values(status="pending")
        )

    await store.mark_enqueued([run.run_id], [0.0])

    marked = await row(engine, run.run_id)
    assert marked["status"] == "enqueued"
    assert abs(marked["enqueued_at"] - await now_of(engine)) < TOLERANCE  # type: ignore[operator]


class SlowToMark(DatabaseTransport):
    """The database transport with a long mark interval, so that a mark is written well after
    its runs were accepted."""

    mark_within_seconds = 5.0


async def test_the_relay_stamps_runs_with_their_send_even_when_it_marks_them_later(
    engine: AsyncEngine,
) -> None:
    runs = [await add_run(engine, minute) for minute in range(3)]
    transport = SlowToMark(engine, None)
    accepted_at = await now_of(engine)
    async with RelayStream(store_for(engine), transport, signing_key=None) as stream:
        await stream.put(runs)
        await asyncio.sleep(1.5)  # sent at once, marked when the stream closes
    marked = [await row(engine, run.run_id) for run in runs]
    assert {run["status"] for run in marked} == {"enqueued"}
    for run in marked:
        assert accepted_at <= run["enqueued_at"] < accepted_at + TOLERANCE  # type: ignore[operator]
    assert stream.result.sent == 3


async def test_runs_the_queue_refused_are_not_marked(engine: AsyncEngine) -> None:
    accepted, refused = await add_run(engine, 0), await add_run(engine, 1)

    class RefusesOne(DatabaseTransport):
        async def send(self, messages: Sequence[OutgoingMessage]) -> set[str]:
            return {message.run_id for message in messages} - {refused.run_id}

    async with RelayStream(store_for(engine), RefusesOne(engine, None), signing_key=None) as stream:
        await stream.put([accepted, refused])
    assert (await row(engine, accepted.run_id))["status"] == "enqueued"
    assert (await row(engine, refused.run_id))["status"] == "pending"
    assert (stream.result.sent, stream.result.failed) == (1, 1)
