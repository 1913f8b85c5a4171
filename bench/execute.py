"""Executor CPU per run beside the floor's, throughput beside the queue's limit, and memory.

The headline is the executor's CPU per run (user + system time of its process over the run)
beside the same figure for the floor (``bench/floor.py``: the same clients doing only receive,
claim, call, record and delete, as its own process), measured in the same run: a ratio of two
figures from one machine state travels between machines, where runs/s alone do not. On a shared
machine one pair's ratio moves by a tenth from run to run, so the floor and one executor process
are measured ``--repeat`` times (3), alternating, and the headline is the median. The last
line reads ``executor_cpu_ms_per_run=<x> floor_cpu_ms_per_run=<y>`` (``bench/capacity.py``
reads it). The measurements, printed as one table:

* raw limit: receive + delete messages/s on LocalStack through the executor's own receive loop
  (same receivers, same concurrency), with no work in between: no database, no call;
* end to end: executions/s from the queue through claim, the call to the KeeperHub stand-in (its
  own process), record and delete, with 1, 2 and 4 ``keeperhub-scheduler executor`` processes
  (``--processes``); the stand-in's counts then confirm that every run was called exactly once;
* the floor: the same, through one ``bench/floor.py`` process;
* memory: the RSS of one executor process after its first executions and as it goes on to
  ``--memory-count`` executions (flat means no per-execution growth);
* where the CPU goes: ms per execution of each process involved (executor, stand-in, LocalStack,
  PostgreSQL) and how busy the machine's cores were, since every process shares them.

Rates are measured between 10% and 90% of the runs finished (start-up and the tail excluded).

    uv run python bench/execute.py                  # 5,000 runs a phase, memory over 50,000
    uv run python bench/execute.py --memory-count 100000      # the full memory figure
    uv run python bench/execute.py --count 2000 --memory-count 0   # CPU and rates, no memory

The default run takes about 15 minutes on the 2-core development machine, where one executor
process manages about 300 executions/s; 100,000 executions for the memory figure take 15.
Run under ``flock /tmp/khs-heavy.lock`` so no two benchmarks share the machine's two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu import MachineClock, localstack_pids, postgres_pids, rss_kib
from bench.harness import Database, StandIn, clean_up_on_sigterm
from keeperhub_scheduler.executor.worker import Executor
from keeperhub_scheduler.runs import RunRef, new_run_id
from keeperhub_scheduler.transport.base import Delivery, OutgoingMessage
from keeperhub_scheduler.transport.messages import encode
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.support import sqs
from tests.support.processes import environment, spawn

FLOOR = Path(__file__).resolve().parent / "floor.py"

SIGNING_KEY = b"signing-key"
CONCURRENCY = 50  # the executor's default SCHEDULER_EXECUTOR_CONCURRENCY
RECEIVERS = 4  # and SCHEDULER_RECEIVE_CONCURRENCY
HANDOFF = 2  # and SCHEDULER_HANDOFF_SECONDS: the visibility each receive asks for
SCHEDULES = 500
FIRST = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Row:
    measurement: str
    count: int
    per_second: float
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # CPU ms per execution, by process
    busy: float = 0.0  # share of the machine's CPU time in use while it ran


@dataclass
class Progress:
    """(seconds, finished) samples; the rate between 10% and 90% of ``total``."""

    total: int
    samples: list[tuple[float, int]] = field(default_factory=list)

    def add(self, finished: int) -> None:
        self.samples.append((time.monotonic(), finished))

    def rate(self) -> float:
        low = next(s for s in self.samples if s[1] >= self.total * 0.1)
        high = next(s for s in self.samples if s[1] >= self.total * 0.9)
        return (high[1] - low[1]) / max(1e-9, high[0] - low[0])


# --- seeding ------------------------------------------------------------------------------------


def seed_runs(database: Database, count: int) -> list[RunRef]:
    """``count`` enqueued runs over ``SCHEDULES`` schedules; their messages, to be sent."""
    messages = []
    with database.connect() as connection:
        for index in range(SCHEDULES):
            connection.execute(
                "INSERT INTO workflows (id, name, enabled) VALUES (%s, 'bench', true)"
                " ON CONFLICT DO NOTHING",
                (f"wf{index}",),
            )
            connection.execute(
                "INSERT INTO workflow_schedules (id, workflow_id, cron_expression)"
                " VALUES (%s, %s, '* * * * *') ON CONFLICT DO NOTHING",
                (f"s{index}", f"wf{index}"),
            )
        offset = connection.execute("SELECT count(*) FROM schedule_runs").fetchone()
        start = int(offset[0]) if offset else 0
        rows = []
        for index in range(start, start + count):
            schedule = index % SCHEDULES
            when = FIRST + timedelta(minutes=index // SCHEDULES)
            run_id = new_run_id()
            rows.append((run_id, f"s{schedule}", f"wf{schedule}", when, when))
            messages.append(run_ref(f"wf{schedule}", f"s{schedule}", when, run_id))
        with connection.cursor().copy(
            "COPY schedule_runs (id, schedule_id, workflow_id, scheduled_for, due_at, status,"
            " created_at, enqueued_at) FROM STDIN"
        ) as copy:
            now = datetime.now(UTC)
            for row in rows:
                copy.write_row((*row, "enqueued", now, now))
    return messages


def run_ref(workflow_id: str, schedule_id: str, when: datetime, run_id: str) -> RunRef:
    return RunRef(
        run_id=run_id, workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=when
    )


async def send_all(endpoint: QueueEndpoint, messages: Sequence[RunRef]) -> None:
    transport = await SqsTransport(endpoint, send_concurrency=16).start()
    try:
        outgoing = []
        for message in messages:
            body, attributes = encode(message, SIGNING_KEY)
            outgoing.append(OutgoingMessage(message.run_id, body, attributes))
        for start in range(0, len(outgoing), 2000):
            chunk = outgoing[start : start + 2000]
            accepted = await transport.send(chunk)
            missing = [m for m in chunk if m.run_id not in accepted]
            while missing:  # LocalStack may refuse a batch under load; send it again
                accepted = await transport.send(missing)
                missing = [m for m in missing if m.run_id not in accepted]
    finally:
        await transport.close()


# --- (a) the raw limit --------------------------------------------------------------------------


class DeleteOnly:
    """A handler that does no work: every delivery is deleted at once."""

    def __init__(self, transport: SqsTransport, progress: Progress) -> None:
        self.transport = transport
        self.progress = progress
        self.deleted = 0

    async def handle(self, delivery: Delivery) -> None:
        await self.transport.delete(delivery)
        self.deleted += 1


async def raw_limit(endpoint: QueueEndpoint, count: int) -> Row:
    await send_all(endpoint, [run_ref("wf", "s", FIRST, f"r{i}") for i in range(count)])
    transport = await SqsTransport(endpoint).start()
    progress = Progress(count)
    handler = DeleteOnly(transport, progress)
    executor = Executor(
        transport, handler,  # type: ignore[arg-type]
        concurrency=CONCURRENCY, receivers=RECEIVERS, receive_visibility=HANDOFF,
    )  # fmt: skip
    stop = asyncio.Event()
    clock = MachineClock({"receiver": lambda: [os.getpid()], "LocalStack": localstack_pids})
    task = asyncio.create_task(executor.run(stop))
    while handler.deleted < count:
        progress.add(handler.deleted)
        await asyncio.sleep(0.05)
    progress.add(handler.deleted)
    cpu, busy = clock.per_execution(count), clock.busy()
    stop.set()
    await task
    await transport.close()
    name = "raw limit: receive + delete, no work"
    return Row(name, count, progress.rate(), "in-process", cpu, busy)


# --- (b, c) executor processes ------------------------------------------------------------------


def finished(database: Database) -> int:
    with database.connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM schedule_runs WHERE status = 'succeeded'"
        ).fetchone()
    return int(row[0]) if row else 0


def execute(
    database: Database,
    env: dict[str, str],
    standin: StandIn,
    count: int,
    processes: int,
    logs: Path,
    rss_every: int = 0,
    floor: bool = False,
) -> tuple[Row, list[tuple[int, int]]]:
    """Seed and send ``count`` runs, run ``processes`` executors (or with ``floor`` the floor
    loop) until all succeeded, stop them.

    With ``rss_every`` (the memory phase) the messages are sent while the executor runs, which
    saves minutes; the rate is then not a clean throughput figure, the RSS samples are.
    """
    before = finished(database)
    messages = seed_runs(database, count)
    standin.reset()
    sender = threading.Thread(target=asyncio.run, args=(send_all(sqs_endpoint(env), messages),))
    if rss_every:
        sender.start()
    else:
        sender.run()
    started = [start(floor, env, logs / f"executor-{processes}-{i}.log") for i in range(processes)]
    print(f"executor pids: {' '.join(str(p.pid) for p in started)}", file=sys.stderr, flush=True)
    groups = {
        "executor": lambda: [p.pid for p in started],
        "stand-in": lambda: [standin.process.pid],
        "LocalStack": localstack_pids,
        "PostgreSQL": postgres_pids,
    }
    progress = Progress(count)
    memory: list[tuple[int, int]] = []
    done = 0
    window = CpuWindow(groups, count)
    while done < count:
        done = finished(database) - before
        progress.add(done)
        window.sample(done)
        due = not memory or done >= memory[-1][0] + rss_every or done >= count
        if rss_every and due and done > 0:
            memory.append((done, rss_kib(started[0].pid)))
        if any(p.poll() is not None for p in started):
            raise RuntimeError(f"an executor exited early; see {logs}")
        time.sleep(0.25)
    cpu, busy = window.result()
    for process in started:
        process.send_signal(signal.SIGTERM)
    codes = [process.wait(timeout=120) for process in started]
    if rss_every:
        sender.join()
    counts = standin.counts()
    twice = sum(1 for calls in counts.values() if calls > 1)
    note = f"exit codes {codes}; {len(counts)} executionIds, {twice} called more than once"
    name = f"end to end, {processes} executor process{'es' if processes > 1 else ''}"
    if floor:
        name = "floor: receive, claim, call, record, delete"
        cpu = {"floor" if key == "executor" else key: ms for key, ms in cpu.items()}
    return Row(name, count, progress.rate(), note, cpu, busy), memory


class CpuWindow:
    """CPU per run between 10% and 90% of the runs finished, as the rates are: the start-up
    (imports, connections: about a second of CPU) and the tail would otherwise be spread over
    the runs and weigh more the fewer runs a phase has."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]], total: int) -> None:
        self.groups, self.total = groups, total
        self.clock: MachineClock | None = None
        self.low = 0
        self.figures: tuple[dict[str, float], float] | None = None

    def sample(self, done: int) -> None:
        if self.clock is None and done >= self.total * 0.1:
            self.clock, self.low = MachineClock(self.groups), done
        elif self.clock and self.figures is None and done >= self.total * 0.9:
            self.figures = self.clock.per_execution(done - self.low), self.clock.busy()

    def result(self) -> tuple[dict[str, float], float]:
        if self.figures is None:
            raise RuntimeError("too few samples for a CPU window: raise --count")
        return self.figures


def start(floor: bool, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    if not floor:
        return spawn(["executor"], env, log)
    output = log.open("ab")
    return subprocess.Popen(
        [sys.executable, str(FLOOR)], env=env, stdout=output, stderr=subprocess.STDOUT
    )


def sqs_endpoint(env: dict[str, str]) -> QueueEndpoint:
    return QueueEndpoint(
        queue_url=env["SQS_QUEUE_URL"],
        dlq_url=env["SCHEDULER_DLQ_URL"],
        region="us-east-1",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        access_key_id="test",
        secret_access_key="test",
    )


# --- the run ------------------------------------------------------------------------------------


def print_table(rows: list[Row], raw: float, memory: list[tuple[int, int]]) -> None:
    print()
    print(f"{'measurement':40} {'count':>7} {'per s':>6} {'of raw':>6}  note")
    for row in rows:
        share = f"{row.per_second / raw:.0%}" if raw else ""
        print(f"{row.measurement:40} {row.count:>7} {row.per_second:>6.0f} {share:>6}  {row.note}")
    print()
    print("CPU ms per execution, by process (all executor processes together), and the share of")
    print(f"the machine's {os.cpu_count()} cores in use meanwhile")
    for row in rows:
        if row.cpu:
            parts = "  ".join(f"{name} {ms:.2f}" for name, ms in row.cpu.items())
            total = sum(row.cpu.values())
            print(f"  {row.measurement:38} {parts}  = {total:.2f}; busy {row.busy:.0%}")
    if memory:
        print()
        print(f"{'executions':>10} {'RSS MiB':>8}   (one executor process)")
        for done, kib in memory:
            print(f"{done:>10} {kib / 1024:>8.1f}")


def main() -> int:
    clean_up_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5_000, help="runs per throughput phase")
    parser.add_argument("--memory-count", type=int, default=50_000, help="runs of the memory phase")
    parser.add_argument("--skip-raw", action="store_true", help="leave out the raw limit")
    parser.add_argument(
        "--repeat", type=int, default=3, help="floor and one-executor pairs (the median is used)"
    )
    parser.add_argument(
        "--processes", default="1,2,4", help="executor process counts, comma-separated"
    )
    arguments = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="khs-bench-execute-"))
    database = Database("bench_execute")
    endpoint = asyncio.run(sqs.create_queues("khs-bench"))
    standin = StandIn()
    rows: list[Row] = []
    memory: list[tuple[int, int]] = []
    try:
        raw = 0.0
        if not arguments.skip_raw:
            rows.append(asyncio.run(raw_limit(endpoint, arguments.count)))
            raw = rows[-1].per_second
        env = environment(database.url, endpoint, standin.url, SCHEDULER_LOG_FORMAT="json")
        # The floor just before one executor process, ``--repeat`` times: the two CPU figures
        # the headline compares are measured one after the other, in as near one machine state
        # as can be, and the pairs alternate so that a drift of the machine falls on both.
        counts = sorted({int(n) for n in arguments.processes.split(",")} | {1}, reverse=True)
        for processes in counts:
            for _ in range(arguments.repeat if processes == 1 else 1):
                if processes == 1:
                    floor, _ = execute(
                        database, env, standin, arguments.count, 1, workdir, floor=True
                    )
                    rows.append(floor)
                row, _ = execute(database, env, standin, arguments.count, processes, workdir)
                rows.append(row)
        if arguments.memory_count:
            row, memory = execute(
                database, env, standin, arguments.memory_count, 1, workdir,
                rss_every=max(1, arguments.memory_count // 10),
            )  # fmt: skip
            row.measurement = "memory run, 1 executor process"
            rows.append(row)
        print_table(rows, raw, memory)
    finally:
        standin.stop()
        asyncio.run(sqs.delete_queues(endpoint))
        database.drop()
        print(f"\nexecutor logs: {workdir}")
    print_headline(rows)
    return 0


def print_headline(rows: list[Row]) -> None:
    """The executor's CPU per run (one process) beside the floor's, the median over the pairs
    measured one after the other; the last line, for tools."""
    ones = [r.cpu["executor"] for r in rows if r.measurement == "end to end, 1 executor process"]
    floors = [r.cpu["floor"] for r in rows if r.measurement.startswith("floor")]
    if not ones or not floors:
        return
    ratios = [one / floor for one, floor in zip(ones, floors, strict=True)]
    executor_ms, floor_ms = statistics.median(ones), statistics.median(floors)
    print()
    if len(ratios) > 1:
        pairs = ", ".join(
            f"{one:.3f}/{floor:.3f} = {one / floor:.2f}x"
            for one, floor in zip(ones, floors, strict=True)
        )
        print(f"executor/floor CPU ms per run, pair by pair: {pairs}")
    print(
        f"executor CPU per run {executor_ms:.2f} ms (target <= 2.0), floor {floor_ms:.2f} ms"
        f" (medians of {len(ratios)}): {statistics.median(ratios):.2f}x the floor, the median of"
        f" the pairs' ratios (target <= 1.3)"
    )
    print(f"executor_cpu_ms_per_run={executor_ms:.3f} floor_cpu_ms_per_run={floor_ms:.3f}")


if __name__ == "__main__":
    sys.exit(main())
