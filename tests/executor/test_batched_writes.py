"""On PostgreSQL the claims of concurrent deliveries, and their final outcomes, are written as
one statement each: the batch answers every delivery exactly as a statement of its own would."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.db.store import Refusal, Skipped
from keeperhub_scheduler.runs import ClaimedRun, RunRef
from tests.executor.world import Schedule, add_runs, add_schedule, run_row, schedule_row, set_run

LEASE = timedelta(seconds=30)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs inside the block."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def message(engine: AsyncEngine, schedule: Schedule, run_id: str) -> RunRef:
    row = await run_row(engine, run_id)
    return RunRef(
        run_id=run_id,
        workflow_id=schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=row["scheduled_for"],
    )


async def test_the_claims_of_one_receive_go_out_as_one_statement(engine: AsyncEngine) -> None:
    schedule = await add_schedule(engine)
    run_ids = await add_runs(engine, schedule, 10, status="enqueued")
    messages = [await message(engine, schedule, run_id) for run_id in run_ids]
    claims = store_for(engine)

    with statements(engine) as seen:
        results = await asyncio.gather(*(claims.claim(m, LEASE) for m in messages))

    assert [(type(r), r.run_id, r.attempt) for r in results] == [  # type: ignore[union-attr]
        (ClaimedRun, run_id, 1) for run_id in run_ids
    ]
    assert len([s for s in seen if s.startswith("UPDATE schedule_runs")]) == 1
    assert {(await run_row(engine, run_id))["status"] for run_id in run_ids} == {"running"}


async def test_a_batch_answers_each_delivery_as_a_claim_of_its_own_would(
    engine: AsyncEngine,
) -> None:
    plain, overlapping, switched_off = (
        await add_schedule(engine),
        await add_schedule(engine, overlap="skip"),
        await add_schedule(engine, enabled=False),
    )
    fresh, finished = await add_runs(engine, plain, 2, status="enqueued")
    await set_run(engine, finished, status="succeeded")
    [careful] = await add_runs(engine, overlapping, status="enqueued")
    [off] = await add_runs(engine, switched_off, status="enqueued")
    fresh_message = await message(engine, plain, fresh)
    stray = RunRef(
        run_id=fresh,
        workflow_id="wf_other",
        schedule_id=plain.id,
        scheduled_for=fresh_message.scheduled_for,
    )
    deliveries = [
        fresh_message,
        fresh_message,  # the same message delivered twice in one receive
        stray,  # names another workflow than its run
        await message(engine, plain, finished),
        await message(engine, overlapping, careful),  # overlap "skip": slow path
        await message(engine, switched_off, off),
        RunRef(
            run_id="gone",
            workflow_id=plain.workflow_id,
            schedule_id=plain.id,
            scheduled_for=fresh_message.scheduled_for,
        ),
    ]
    claims = store_for(engine)

    results = await asyncio.gather(*(claims.claim(m, LEASE) for m in deliveries))

    taken, copy, mismatch, done, slow, skipped, gone = results
    assert isinstance(taken, ClaimedRun)
    assert taken.run_id == fresh
    assert isinstance(copy, Refusal)
    assert (copy.status, copy.wait_seconds > 20) == ("running", True)
    assert mismatch == Refusal("mismatch")
    assert done == Refusal("succeeded")
    assert isinstance(slow, ClaimedRun)
    assert slow.run_id == careful
    assert isinstance(skipped, Skipped)
    assert skipped.reason == "schedule_disabled"
    assert gone == Refusal(None)
    assert (await run_row(engine, off))["status"] == "skipped"
    assert (await run_row(engine, fresh))["attempts"] == 1


async def claim_all(
    engine: AsyncEngine, schedule: Schedule, run_ids: list[str]
) -> list[ClaimedRun]:
    claims = store_for(engine)
    messages = [await message(engine, schedule, run_id) for run_id in run_ids]
    results = await asyncio.gather(*(claims.claim(m, LEASE) for m in messages))
    assert all(isinstance(result, ClaimedRun) for result in results)
    return results  # type: ignore[return-value]


async def test_final_outcomes_of_one_batch_count_every_run_and_report_the_latest(
    engine: AsyncEngine,
) -> None:
    """Seven runs of one schedule and three of another finish in one statement; a stale attempt
    among them (its run was taken over) is not written and not counted."""
    first, second = await add_schedule(engine, run_count="41"), await add_schedule(engine)
    first_runs = await claim_all(engine, first, await add_runs(engine, first, 7, status="enqueued"))
    second_runs = await claim_all(
        engine, second, await add_runs(engine, second, 3, status="enqueued")
    )
    stale = first_runs[0]
    await set_run(engine, stale.run_id, attempts=2)  # taken over by another executor since
    latest = first_runs[-1]
    outcomes = {run.run_id: ("succeeded", 200, None) for run in first_runs + second_runs}
    outcomes[latest.run_id] = ("failed", 422, "HTTP 422: bad input")
    records = store_for(engine)
    runs = first_runs + second_runs
    random.shuffle(runs)

    with statements(engine) as seen:
        written = await asyncio.gather(
            *(records.record(run, status=outcomes[run.run_id][0],
                             http_status=outcomes[run.run_id][1], error=outcomes[run.run_id][2])
              for run in runs)
        )  # fmt: skip

    assert dict(zip([run.run_id for run in runs], written, strict=True)) == {
        run.run_id: run is not stale for run in runs
    }
    assert len([s for s in seen if "UPDATE schedule_runs" in s]) == 1
    row = await schedule_row(engine, first.id)
    assert (row["run_count"], row["last_status"], row["last_error"]) == (
        "47", "error", "HTTP 422: bad input",
    )  # fmt: skip
    assert row["last_status_for"] == latest.scheduled_for
    assert (await schedule_row(engine, second.id))["run_count"] == "3"
    assert (await run_row(engine, stale.run_id))["status"] == "running"


async def test_two_executors_finishing_runs_of_the_same_schedules_lose_no_count(
    database_url: str, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Batches of two processes update the same schedules at once: every run is counted once,
    and no batch failed over to writing its outcomes one by one."""
    schedules = [await add_schedule(engine) for _ in range(5)]
    runs: list[ClaimedRun] = []
    for schedule in schedules:
        runs += await claim_all(
            engine, schedule, await add_runs(engine, schedule, 40, status="enqueued")
        )
    random.shuffle(runs)
    other_engine = create_engine(database_url)
    executors = [store_for(engine), store_for(other_engine)]
    caplog.set_level(logging.WARNING, logger="keeperhub_scheduler.executor")

    try:
        written = await asyncio.gather(
            *(executors[index % 2].record(run, status="succeeded", http_status=200, error=None)
              for index, run in enumerate(runs))
        )  # fmt: skip
    finally:
        await other_engine.dispose()

    assert all(written)
    assert [(await schedule_row(engine, s.id))["run_count"] for s in schedules] == ["40"] * 5
    assert not [r for r in caplog.records if "batched record failed" in r.getMessage()]
