"""A claim that waited: its lease counts from when it read the run's row, so a claim held up for
longer than a lease (the row locked by another transaction, a database too busy to answer) must
not hand back a lapsed lease that a copy of the message could take over mid-call."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.db import store_for
from keeperhub_scheduler.db.store import Refusal
from keeperhub_scheduler.runs import ClaimedRun, RunRef
from tests.executor.world import add_runs, add_schedule, run_row

LEASE = timedelta(seconds=1.5)  # the default hand-off's lease


@pytest.mark.parametrize("overlap", ["allow", "skip"])  # the batched claim, the transactional one
async def test_two_claims_that_waited_longer_than_a_lease_hold_each_run_once(
    engine: AsyncEngine, database_url: str, overlap: str
) -> None:
    """Two executors claim the same five runs (the second a second later, as a message that
    reappeared would be) while another transaction holds the rows for longer than a lease. Each
    run ends up held by exactly one of them, under the attempt the holder was given."""
    refs = []
    for _ in range(5):  # a schedule each: "skip" would skip a second run of one schedule
        schedule = await add_schedule(engine, overlap=overlap)
        [run_id] = await add_runs(engine, schedule, status="enqueued")
        scheduled_for = (await run_row(engine, run_id))["scheduled_for"]
        refs.append(RunRef(run_id=run_id, workflow_id=schedule.workflow_id,
                           schedule_id=schedule.id, scheduled_for=scheduled_for))  # fmt: skip
    run_ids = [ref.run_id for ref in refs]
    first, second = store_for(engine), store_for(engine)  # two processes' stores
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT id FROM schedule_runs WHERE id = ANY(%s) FOR UPDATE", (run_ids,))
        firsts = [asyncio.create_task(first.claim(ref, LEASE)) for ref in refs]
        await asyncio.sleep(1.0)
        seconds = [asyncio.create_task(second.claim(ref, LEASE)) for ref in refs]
        await asyncio.sleep(2.5)
        blocker.rollback()
    outcomes = list(zip(await asyncio.gather(*firsts), await asyncio.gather(*seconds), strict=True))

    for run_id, pair in zip(run_ids, outcomes, strict=True):
        holders = [taken for taken in pair if isinstance(taken, ClaimedRun)]
        assert len(holders) == 1, pair
        assert all(isinstance(taken, Refusal) for taken in pair if taken not in holders)
        row = await run_row(engine, run_id)
        assert (row["status"], row["attempts"]) == ("running", holders[0].attempt)
