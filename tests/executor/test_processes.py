"""The executor as a real process (``keeperhub-scheduler executor``), killed and stopped.

The stand-in runs as its own process too, and counts every call per ``executionId`` in its log.
Queues use a 6-second visibility timeout (and the executor the same setting) so a killed
executor's message comes back quickly.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.world import (
    add_runs,
    add_schedule,
    relay,
    run_row,
    wait_for_runs,
    wait_until,
)
from tests.support import sqs
from tests.support.processes import environment, kill, spawn
from tests.support.standin import StandInProcess

VISIBILITY = 6

pytestmark = pytest.mark.slow


@pytest.fixture
async def crash_queue(localstack: str) -> AsyncIterator[QueueEndpoint]:
    endpoint = await sqs.create_queues("khs-crash", visibility=VISIBILITY)
    yield endpoint
    await sqs.delete_queues(endpoint)


@pytest.fixture
async def crash_transport(crash_queue: QueueEndpoint) -> AsyncIterator[SqsTransport]:
    transport = await SqsTransport(crash_queue).start()
    yield transport
    await transport.close()


@pytest.fixture
def standin_process(tmp_path: Path) -> Iterator[StandInProcess]:
    standin = StandInProcess(tmp_path / "standin.jsonl")
    yield standin
    # Not ``stop()``: a graceful shutdown would wait for a call scripted to stall for minutes.
    kill(standin.process)


class Executors:
    """``keeperhub-scheduler executor`` processes of one test; any left running are killed."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, **extra: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"executor-{len(self.started)}.log"
        process = spawn(["executor"], self.env | extra, log)
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.tmp_path.glob("executor-*.log")))

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                kill(process)


def executors_for(
    tmp_path: Path,
    database_url: str,
    queue: QueueEndpoint,
    standin: StandInProcess,
    visibility: int,
) -> Executors:
    env = environment(
        database_url,
        queue,
        standin.url,
        SCHEDULER_VISIBILITY_TIMEOUT_SECONDS=str(visibility),
        SCHEDULER_RECEIVE_WAIT_SECONDS="5",
        SCHEDULER_LOG_FORMAT="text",
    )
    return Executors(tmp_path, env)


@pytest.fixture
def executors(
    tmp_path: Path,
    database_url: str,
    crash_queue: QueueEndpoint,
    standin_process: StandInProcess,
) -> Iterator[Executors]:
    """Executors on the crash queue (a 6-second visibility timeout, the setting to match)."""
    processes = executors_for(tmp_path, database_url, crash_queue, standin_process, VISIBILITY)
    yield processes
    processes.kill_all()


@pytest.fixture
def executors_30s(
    tmp_path: Path, database_url: str, queue: QueueEndpoint, standin_process: StandInProcess
) -> Iterator[Executors]:
    """Executors on a queue with the default 30-second visibility timeout."""
    processes = executors_for(tmp_path, database_url, queue, standin_process, 30)
    yield processes
    processes.kill_all()


async def exit_code(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    await wait_until(lambda: process.poll() is not None, timeout, "the executor to exit")
    return int(process.returncode)


def calls_per_execution(standin: StandInProcess) -> Counter[str]:
    return Counter(call["executionId"] for call in standin.calls())


async def test_an_executor_killed_mid_call_is_replaced_and_the_run_called_again_once(
    engine: AsyncEngine,
    crash_queue: QueueEndpoint,
    crash_transport: SqsTransport,
    standin_process: StandInProcess,
    executors: Executors,
) -> None:
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin_process.post("/_control/script", {"responses": [{"status": 200, "delay": 120}]})
    await relay(engine, crash_transport)

    first = executors.start()
    await wait_until(lambda: len(standin_process.calls()) == 1, 60, "the first call")
    assert kill(first, signal.SIGKILL) == -signal.SIGKILL
    assert (await run_row(engine, run_id))["status"] == "running"

    executors.start()
    runs = await wait_for_runs(engine, [run_id], timeout=90)

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 2)
    assert calls_per_execution(standin_process) == {run_id: 2}
    assert await sqs.queue_counts(crash_queue) == (0, 0)


async def test_a_call_killed_mid_way_is_taken_over_within_seconds_with_the_default_visibility(
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin_process: StandInProcess,
    executors_30s: Executors,
) -> None:
    """The call has been going for several heartbeats when its executor is SIGKILLed. The queue's
    visibility timeout is 30 s, but a heartbeat extends it (and the lease) by the 2-second
    hand-off only: the next executor takes the run over long before 30 s."""
    schedule = await add_schedule(engine)
    [run_id] = await add_runs(engine, schedule)
    standin_process.post("/_control/script", {"responses": [{"status": 200, "delay": 120}]})
    await relay(engine, transport)

    first = executors_30s.start()
    await wait_until(lambda: len(standin_process.calls()) == 1, 60, "the first call")
    await asyncio.sleep(3)  # several beats into the call
    assert kill(first, signal.SIGKILL) == -signal.SIGKILL

    executors_30s.start()
    runs = await wait_for_runs(engine, [run_id], timeout=20)  # well inside the 30 s

    assert (runs[run_id]["status"], runs[run_id]["attempts"]) == ("succeeded", 2)
    assert calls_per_execution(standin_process) == {run_id: 2}


async def test_runs_a_killed_executor_received_but_never_called_are_taken_over_within_seconds(
    engine: AsyncEngine,
    database_url: str,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin_process: StandInProcess,
    executors_30s: Executors,
) -> None:
    """The first executor receives five runs and is SIGKILLed while its claim waits (the runs'
    rows are locked meanwhile). The queue's visibility timeout is 30 s, but messages are received
    for half the 2-second hand-off only: the second executor calls every run, once, long before
    30 s."""
    run_ids = await _five_runs_on_the_queue(engine, transport)
    with psycopg.connect(database_url) as blocker:
        _lock_rows(blocker, run_ids)
        first = executors_30s.start()

        async def all_received() -> bool:
            return await sqs.queue_counts(queue) == (0, 5)

        await wait_until(all_received, 60, "the first executor to receive the runs")
        assert kill(first, signal.SIGKILL) == -signal.SIGKILL
        blocker.rollback()
    assert standin_process.calls() == []

    executors_30s.start()
    runs = await wait_for_runs(engine, run_ids, timeout=20)  # well inside the 30 s

    assert {run["status"] for run in runs.values()} == {"succeeded"}
    assert calls_per_execution(standin_process) == dict.fromkeys(run_ids, 1)


async def test_copies_received_while_a_slow_claim_waits_still_call_each_run_once(
    engine: AsyncEngine,
    database_url: str,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin_process: StandInProcess,
    executors_30s: Executors,
) -> None:
    """A message is received for one second only; the first executor's claim of these five runs
    waits much longer on their locked rows, so their messages reappear, and the second executor
    receives them and claims them too. The claim decides: each run is called once, and the copies
    are dropped once it has finished."""
    run_ids = await _five_runs_on_the_queue(engine, transport)
    with (
        psycopg.connect(database_url) as blocker,
        psycopg.connect(database_url, autocommit=True) as observer,
    ):
        _lock_rows(blocker, run_ids)
        executors_30s.start()

        async def all_received_and_claiming() -> bool:
            return await sqs.queue_counts(queue) == (0, 5) and _claims_waiting(observer) >= 1

        await wait_until(all_received_and_claiming, 60, "the first executor to claim all five")
        executors_30s.start()  # what it receives can only be copies

        def a_copy_claiming() -> bool:
            return _claims_waiting(observer) >= 2

        await wait_until(a_copy_claiming, 30, "a copy's claim beside the first")
        blocker.rollback()
    runs = await wait_for_runs(engine, run_ids, timeout=30)

    # Whichever claim held a run called it; the other was refused, and did not call. (The
    # attempt may be the second: a claim whose lease lapsed while it waited is taken over.)
    assert {run["status"] for run in runs.values()} == {"succeeded"}
    assert calls_per_execution(standin_process) == dict.fromkeys(run_ids, 1)
    await wait_until(lambda: _counts_are(queue, (0, 0)), 30, "every copy to be dropped")


async def _five_runs_on_the_queue(engine: AsyncEngine, transport: SqsTransport) -> list[str]:
    schedule = await add_schedule(engine)
    run_ids = await add_runs(engine, schedule, 5)
    await relay(engine, transport)
    return run_ids


def _lock_rows(blocker: psycopg.Connection[tuple[str]], run_ids: list[str]) -> None:
    """Hold the runs' rows, as a slow transaction would: every claim of them waits."""
    blocker.execute("SELECT id FROM schedule_runs WHERE id = ANY(%s) FOR UPDATE", (run_ids,))


def _claims_waiting(connection: psycopg.Connection[tuple[int]]) -> int:
    """Executor statements waiting for a row lock. (Not asked inside the blocker's transaction:
    PostgreSQL would answer from the snapshot of statistics it took at the transaction's start.)"""
    row = connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query ILIKE '%schedule_runs%'"
    ).fetchone()
    return int(row[0]) if row else 0


async def test_sigterm_with_50_calls_in_flight_finishes_them_all_and_exits_0(
    engine: AsyncEngine,
    crash_queue: QueueEndpoint,
    crash_transport: SqsTransport,
    standin_process: StandInProcess,
    executors: Executors,
) -> None:
    """Every call in flight finishes and is recorded; the long polls stop at SIGTERM, so messages
    sent during the drain are never started, and none is left invisible in the queue."""
    schedule = await add_schedule(engine)
    run_ids = await add_runs(engine, schedule, 50)
    slow = [{"status": 200, "delay": 5}] * 50
    standin_process.post("/_control/script", {"responses": slow})
    await relay(engine, crash_transport)

    # Room for more than 50, so the receive loops are in their long polls when SIGTERM comes;
    # polls of 20 s (the default), which SIGTERM cuts: the late messages arrive after it.
    executor = executors.start(
        SCHEDULER_EXECUTOR_CONCURRENCY="100", SCHEDULER_RECEIVE_WAIT_SECONDS="20"
    )
    await wait_until(lambda: len(standin_process.calls()) == 50, 60, "50 calls in flight")
    executor.send_signal(signal.SIGTERM)
    last = (await run_row(engine, run_ids[-1]))["scheduled_for"]
    late_ids = await add_runs(engine, schedule, 10, first=last + timedelta(minutes=1))
    await relay(engine, crash_transport)  # arrives during the drain

    assert await exit_code(executor) == 0, executors.logs()[-3000:]
    runs = await wait_for_runs(engine, run_ids, timeout=1)
    assert {run["status"] for run in runs.values()} == {"succeeded"}
    assert sorted(calls_per_execution(standin_process)) == sorted(run_ids)
    late = [await run_row(engine, run_id) for run_id in late_ids]
    assert {(run["status"], run["attempts"]) for run in late} == {("enqueued", 0)}
    # A long poll cut by SIGTERM may still have taken some (the queue answers a poll whose
    # client left): those are invisible only for the hand-off (2 s), not a visibility timeout.
    await wait_until(
        lambda: _counts_are(crash_queue, (10, 0)), 10, "the late messages to be visible"
    )


async def test_two_executors_on_one_queue_call_each_of_2000_runs_exactly_once(
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin_process: StandInProcess,
    executors_30s: Executors,
) -> None:
    run_ids: list[str] = []
    for _ in range(100):
        schedule = await add_schedule(engine)
        run_ids += await add_runs(engine, schedule, 20)
    await relay(engine, transport)

    pair = [executors_30s.start(), executors_30s.start()]
    runs = await wait_for_runs(engine, run_ids, timeout=240)
    for process in pair:
        process.send_signal(signal.SIGTERM)
    codes = [await exit_code(process) for process in pair]

    assert codes == [0, 0], executors_30s.logs()[-3000:]
    assert {run["status"] for run in runs.values()} == {"succeeded"}
    assert {run["attempts"] for run in runs.values()} == {1}
    counts = calls_per_execution(standin_process)
    assert sorted(counts) == sorted(run_ids)
    assert set(counts.values()) == {1}
    assert await sqs.queue_counts(queue) == (0, 0)
    # Both took part: the queue was shared, not drained by whichever started first.
    logs = [path.read_text() for path in sorted(executors_30s.tmp_path.glob("executor-*.log"))]
    assert all("run finished" in log for log in logs)


async def _counts_are(queue: QueueEndpoint, expected: tuple[int, int]) -> bool:
    return await sqs.queue_counts(queue) == expected
