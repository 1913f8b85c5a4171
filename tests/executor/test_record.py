"""Recording an outcome: the run and its schedule's KeeperHub fields in one atomic write, guarded
so that an executor that lost its run (its lease lapsed and another took over) cannot overwrite."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.runs import ClaimedRun, RunRef
from tests.executor.world import Schedule, add_runs, add_schedule, run_row, schedule_row

LEASE = timedelta(seconds=30)


async def claimed(
    engine: AsyncEngine, schedule: Schedule, run_id: str, lease: timedelta = LEASE
) -> ClaimedRun:
    row = await run_row(engine, run_id)
    message = RunRef(
        run_id=run_id,
        workflow_id=schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=row["scheduled_for"],
    )
    claimed_run = await store_for(engine).claim(message, lease)
    assert isinstance(claimed_run, ClaimedRun), claimed_run
    return claimed_run


async def test_an_executor_whose_run_was_taken_over_cannot_overwrite_the_outcome(
    engine: AsyncEngine,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    stale = await claimed(engine, schedule, run_id, lease=timedelta(0))  # lapses at once
    await asyncio.sleep(0.01)
    current = await claimed(engine, schedule, run_id)
    assert (stale.attempt, current.attempt) == (1, 2)

    assert await store_for(engine).record(current, status="succeeded", http_status=200, error=None)
    late = await store_for(engine).record(stale, status="failed", http_status=500, error="late")
    assert late is False

    run = await run_row(engine, run_id)
    assert (run["status"], run["http_status"], run["error"], run["attempts"]) == (
        "succeeded",
        200,
        None,
        2,
    )
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["last_error"], row["run_count"]) == ("success", None, "1")


async def test_a_stale_executor_cannot_extend_a_lease_that_is_no_longer_its_own(
    engine: AsyncEngine,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    stale = await claimed(engine, schedule, run_id, lease=timedelta(0))
    await asyncio.sleep(0.01)
    current = await claimed(engine, schedule, run_id)
    before = (await run_row(engine, run_id))["lease_until"]

    assert await store_for(engine).extend_lease(stale, timedelta(hours=1)) is False
    assert (await run_row(engine, run_id))["lease_until"] == before
    assert await store_for(engine).extend_lease(current, timedelta(hours=1)) is True


@pytest.mark.parametrize(
    ("keeperhub_count", "expected"),
    [("41", "71"), ("0", "30"), (None, "30"), ("", "30"), ("not a number", "30")],
)
async def test_concurrent_outcomes_of_one_schedule_lose_no_count_and_report_the_latest(
    keeperhub_count: str | None, expected: str, engine: AsyncEngine
) -> None:
    """30 runs of one schedule finishing at once, in random order: run_count (text, as KeeperHub
    keeps it) grows by exactly 30, and last_status/last_error describe the latest occurrence
    however late its outcome arrives. A count that is not a number restarts from zero."""
    schedule = await add_schedule(engine, run_count=keeperhub_count)
    run_ids = await add_runs(engine, schedule, 30, status="enqueued")
    claims = [await claimed(engine, schedule, run_id) for run_id in run_ids]
    latest = claims[-1]
    random.shuffle(claims)

    async def finish(run: ClaimedRun) -> bool:
        if run is latest:
            return await store_for(engine).record(
                run, status="failed", http_status=422, error="HTTP 422: bad input"
            )
        return await store_for(engine).record(run, status="succeeded", http_status=200, error=None)

    results = await asyncio.gather(*(finish(run) for run in claims))

    assert all(results)
    row = await schedule_row(engine, schedule.id)
    assert row["run_count"] == expected
    assert (row["last_status"], row["last_error"]) == ("error", "HTTP 422: bad input")
    assert row["last_status_for"] == latest.scheduled_for
    finished = [await run_row(engine, run_id) for run_id in run_ids]
    assert row["last_run_at"] == max(run["finished_at"] for run in finished)


async def test_a_retry_is_recorded_on_the_run_only(engine: AsyncEngine) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule, status="enqueued")
    claim = await claimed(engine, schedule, run_id)

    assert await store_for(engine).record(
        claim, status="retrying", http_status=503, error="HTTP 503: busy", retry_in=30
    )

    run = await run_row(engine, run_id)
    assert (run["status"], run["http_status"], run["lease_until"]) == ("retrying", 503, None)
    assert run["next_attempt_at"] is not None
    assert run["finished_at"] is None
    row = await schedule_row(engine, schedule.id)
    assert (row["last_status"], row["last_run_at"], row["run_count"]) == (None, None, "0")
