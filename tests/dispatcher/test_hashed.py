"""H through the real dispatcher: each schedule fires at the values its own id picks."""

from __future__ import annotations

from keeperhub_scheduler.cron import parse_cron
from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.dispatcher.helpers import (
    add_workflow,
    assert_one_message_per_run,
    drain,
    fired,
    keeperhub_write,
    occurrences_between,
    run_for,
    running_dispatcher,
    runs_of,
    schedule_row,
    utc,
)

EVERY_TWO_SECONDS_HASHED = "H/2 * * * * *"  # every 2 s, from second 0 or 1 as the id says


async def test_each_schedule_fires_at_its_own_hashed_seconds(
    database_url: str, queue: QueueEndpoint
) -> None:
    ids = [f"sch_{i}" for i in range(20)]
    odd = next(i for i in ids if parse_cron(EVERY_TWO_SECONDS_HASHED, i).seconds[0] == 1)
    even = next(i for i in ids if parse_cron(EVERY_TWO_SECONDS_HASHED, i).seconds[0] == 0)
    for schedule_id in (odd, even):
        add_workflow(database_url, f"wf-{schedule_id}")
        keeperhub_write(
            database_url,
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression) VALUES (%s, %s, %s)",
            schedule_id,
            f"wf-{schedule_id}",
            EVERY_TWO_SECONDS_HASHED,
        )
    starts = {i: utc(schedule_row(database_url, i)["decided_through"]) for i in (odd, even)}
    async with running_dispatcher(database_url, queue) as dispatcher:
        await run_for(dispatcher, 5.0)

    every = []
    for schedule_id, parity in ((odd, 1), (even, 0)):
        runs = runs_of(database_url, schedule_id)
        timing = Timing.of(EVERY_TWO_SECONDS_HASHED, hash_seed=schedule_id)
        through = utc(schedule_row(database_url, schedule_id)["decided_through"])
        assert fired(runs) == occurrences_between(timing, starts[schedule_id], through)
        assert len(fired(runs)) >= 2
        assert {run.second % 2 for run in fired(runs)} == {parity}
        every += runs
    assert_one_message_per_run(await drain(queue, expect=len(every)), every)
