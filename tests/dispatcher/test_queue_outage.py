"""The queue goes away for half a minute: the dispatcher keeps deciding, loses no run, does not
crash, and relays everything once the queue is back; ``--once`` meanwhile exits non-zero.

The LocalStack here is the test's own (``PrivateLocalStack``), stopped and started again. It keeps
no state across a restart, so before stopping it the test freezes the dispatcher (SIGSTOP) and
drains what was already sent; LocalStack loses nothing that was ours to keep.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.sqs import QueueEndpoint, setup_queues
from tests.dispatcher.consumer import consuming
from tests.dispatcher.helpers import (
    add_many_schedules,
    assert_one_message_per_run,
    by_run_id,
    count_runs,
    db_now,
    decoded,
    fired,
    occurrences_between,
    runs_of,
    schedule_row,
    skips,
    utc,
)
from tests.dispatcher.private_localstack import PrivateLocalStack
from tests.support import processes

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 30.0
EVERY_SECOND = "* * * * * *"


@pytest.fixture
def private_localstack(tmp_path: Path) -> Iterator[PrivateLocalStack]:
    localstack = PrivateLocalStack(tmp_path / "localstack")
    localstack.start()
    try:
        yield localstack
    finally:
        localstack.stop()


async def create_queue(queue: QueueEndpoint) -> None:
    # A short visibility timeout: messages of a receive whose answer the outage swallowed come
    # back to the consumer in seconds.
    await setup_queues(queue, visibility_timeout=10, max_receive_count=10)


async def wait_for_db(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(condition):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


async def test_a_30_second_queue_outage_loses_no_run_and_sends_each_once(
    database_url: str, private_localstack: PrivateLocalStack, tmp_path: Path
) -> None:
    queue = private_localstack.queue("outage")
    await create_queue(queue)
    start = db_now(database_url)
    ids = add_many_schedules(database_url, "outage-", 30, EVERY_SECOND, start)
    env = processes.environment(database_url, queue)
    dispatcher = processes.spawn(["dispatcher"], env, tmp_path / "dispatcher.log")
    try:
        async with consuming(queue) as consumer:
            await consumer.wait_for(100, timeout=60)

            # Freeze the dispatcher, take what it already sent, then take the queue away.
            dispatcher.send_signal(signal.SIGSTOP)
            await consumer.wait_until_drained()
            private_localstack.stop()
            dispatcher.send_signal(signal.SIGCONT)
            await asyncio.sleep(5)
            pending_early = count_runs(database_url, "status = 'pending'")

            once = await asyncio.to_thread(processes.run, ["dispatcher", "--once"], env)
            assert once.returncode == 1, once.stderr[-2000:]
            await asyncio.sleep(OUTAGE_SECONDS - 5)
            assert dispatcher.poll() is None, "the dispatcher died during the outage"
            pending_late = count_runs(database_url, "status = 'pending'")
            assert pending_late > pending_early > 0  # still deciding, nothing sent

            await asyncio.to_thread(private_localstack.start)
            await create_queue(queue)
            await wait_for_db(
                lambda: count_runs(database_url, "status = 'pending'") == 0,
                timeout=90,
                what="the outbox to empty once the queue is back",
            )
            assert processes.kill(dispatcher, signal.SIGTERM) == 0
            await consumer.wait_until_drained()
    finally:
        if dispatcher.poll() is None:
            processes.kill(dispatcher)

    runs = runs_of(database_url)
    assert {run["status"] for run in runs} == {"enqueued"}
    every = Timing.of(EVERY_SECOND)
    for schedule_id in ids:
        own = [run for run in runs if run["schedule_id"] == schedule_id]
        through = utc(schedule_row(database_url, schedule_id)["decided_through"])
        assert fired(own) == occurrences_between(every, start, through), schedule_id
        assert skips(own) == []
    assert_one_message_per_run(decoded(consumer.messages), runs)
    assert "queue refused" in (tmp_path / "dispatcher.log").read_text()


async def test_a_frozen_queue_does_not_hold_up_decisions(
    database_url: str, private_localstack: PrivateLocalStack, tmp_path: Path
) -> None:
    """A queue that accepts connections and never answers (here: LocalStack under SIGSTOP).

    Sends time out instead of waiting for the client's read timeout, so deciding goes on on
    time (no occurrence is coalesced or misfired). A batch cut off by the timeout may have
    reached the queue anyway and is sent again later: at least once, never lost.
    """
    queue = private_localstack.queue("frozen")
    await create_queue(queue)
    start = db_now(database_url)
    ids = add_many_schedules(database_url, "frozen-", 30, EVERY_SECOND, start)
    env = processes.environment(database_url, queue)
    dispatcher = processes.spawn(["dispatcher"], env, tmp_path / "dispatcher.log")
    try:
        async with consuming(queue) as consumer:
            await consumer.wait_for(60, timeout=60)
            private_localstack.freeze()
            frozen_at = count_runs(database_url)
            await asyncio.sleep(OUTAGE_SECONDS)
            assert dispatcher.poll() is None
            assert count_runs(database_url) > frozen_at + 20 * len(ids)  # still deciding
            private_localstack.thaw()
            await wait_for_db(
                lambda: count_runs(database_url, "status = 'pending'") == 0,
                timeout=90,
                what="the outbox to empty once the queue answers again",
            )
            assert processes.kill(dispatcher, signal.SIGTERM) == 0
            await consumer.wait_until_drained()
    finally:
        if dispatcher.poll() is None:
            processes.kill(dispatcher)
        private_localstack.thaw()

    runs = runs_of(database_url)
    assert {run["status"] for run in runs} == {"enqueued"}
    every = Timing.of(EVERY_SECOND)
    for schedule_id in ids:
        own = [run for run in runs if run["schedule_id"] == schedule_id]
        through = utc(schedule_row(database_url, schedule_id)["decided_through"])
        assert fired(own) == occurrences_between(every, start, through), schedule_id
        assert skips(own) == []  # nothing was decided late enough to be coalesced
    received = decoded(consumer.messages)
    counts = by_run_id(received)
    assert set(counts) == {run["id"] for run in runs}  # every run sent, nothing else
    # Only what was in flight when the queue froze (16 batches), and one probing batch per
    # retry after that, can have gone out twice.
    assert sum(count - 1 for count in counts.values()) <= 16 * 10 + 10 * 5
