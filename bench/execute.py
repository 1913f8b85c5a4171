"""Executor throughput and memory: how close one process comes to what the queue itself allows.

Three measurements, printed as one table:

* raw limit: receive + delete messages/s on LocalStack through the executor's own receive loop
  (same receivers, same concurrency), with no work in between: no database, no call;
* end to end: executions/s from the queue through claim, the call to the KeeperHub stand-in (its
  own process), record and delete, with 1 and with 2 ``keeperhub-scheduler executor`` processes;
  the stand-in's counts then confirm that every run was called exactly once;
* memory: the RSS of one executor process after its first executions and as it goes on to
  ``--memory-count`` executions (flat means no per-execution growth);
* where the CPU goes: ms per execution of each process involved (executor, stand-in, LocalStack,
  PostgreSQL) and how busy the machine's cores were, since every process shares them.

Rates are measured between 10% and 90% of the runs finished (start-up and the tail excluded).

    uv run python bench/execute.py                  # 5,000 runs a phase, memory over 50,000
    uv run python bench/execute.py --memory-count 100000      # the full memory figure
    uv run python bench/execute.py --count 1000 --memory-count 0   # a quick look

The default run takes about 10 minutes on the 2-core development machine, where one executor
process manages about 300 executions/s; 100,000 executions for the memory figure take 15.
Run under ``flock /tmp/khs-bench.lock`` so no two benchmarks share the machine's two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Database, clean_up_on_sigterm
from keeperhub_scheduler.executor.worker import Executor
from keeperhub_scheduler.runs import RunRef, new_run_id
from keeperhub_scheduler.transport.base import Delivery, OutgoingMessage
from keeperhub_scheduler.transport.messages import encode
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.support import sqs
from tests.support.processes import environment, spawn
from tests.support.standin import free_port

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


class StandIn:
    """The stand-in as its own process, without a call log (it would cost the stand-in CPU)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keeperhub_scheduler.cli", "standin", "--port", str(self.port)],
            env={"PATH": "/usr/bin:/bin", "SCHEDULER_SERVICE_API_KEY": "service-key"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.counts()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("stand-in did not start")

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/_counts", timeout=60) as answer:
            counts: dict[str, int] = json.load(answer)
        return counts

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/_control/reset", data=b"{}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far (children not included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def localstack_pids() -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "localstack.runtime.main"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes: the postmaster, its workers and every backend."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" (", 1)[1].startswith("postgres)"):
                pids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return pids


class MachineClock:
    """CPU seconds by group of processes, and the machine's busy share, from one start.

    Processes may start after ``start`` (PostgreSQL's backends for new connections): each group's
    processes are looked up again at the end and a new one counts from zero.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before = {name: _cpu_by_pid(find()) for name, find in groups.items()}
        self.machine_before = _machine_jiffies()

    def per_execution(self, count: int) -> dict[str, float]:
        """CPU ms per execution of each group since the start."""
        spent = {}
        for name, find in self.groups.items():
            now = _cpu_by_pid(find())
            before = self.before[name]
            seconds = sum(value - before.get(pid, 0.0) for pid, value in now.items())
            spent[name] = seconds / count * 1000
        return spent

    def busy(self) -> float:
        busy, total = (after - before for after, before in zip(
            _machine_jiffies(), self.machine_before, strict=True
        ))  # fmt: skip
        return busy / max(1, total)


def _cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot; idle and iowait are not busy."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already counted in user
    return total - fields[3] - fields[4], total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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
) -> tuple[Row, list[tuple[int, int]]]:
    """Seed and send ``count`` runs, run ``processes`` executors until all succeeded, stop them.

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
    started = [
        spawn(["executor"], env, logs / f"executor-{processes}-{i}.log") for i in range(processes)
    ]
    print(f"executor pids: {' '.join(str(p.pid) for p in started)}", file=sys.stderr, flush=True)
    clock = MachineClock({
        "executor": lambda: [p.pid for p in started],
        "stand-in": lambda: [standin.process.pid],
        "LocalStack": localstack_pids,
        "PostgreSQL": postgres_pids,
    })  # fmt: skip
    progress = Progress(count)
    memory: list[tuple[int, int]] = []
    done = 0
    while done < count:
        done = finished(database) - before
        progress.add(done)
        due = not memory or done >= memory[-1][0] + rss_every or done >= count
        if rss_every and due and done > 0:
            memory.append((done, rss_kib(started[0].pid)))
        if any(p.poll() is not None for p in started):
            raise RuntimeError(f"an executor exited early; see {logs}")
        time.sleep(0.25)
    cpu, busy = clock.per_execution(count), clock.busy()
    for process in started:
        process.send_signal(signal.SIGTERM)
    codes = [process.wait(timeout=120) for process in started]
    if rss_every:
        sender.join()
    counts = standin.counts()
    twice = sum(1 for calls in counts.values() if calls > 1)
    note = f"exit codes {codes}; {len(counts)} executionIds, {twice} called more than once"
    name = f"end to end, {processes} executor process{'es' if processes > 1 else ''}"
    return Row(name, count, progress.rate(), note, cpu, busy), memory


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
        for processes in (1, 2):
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
