"""Dispatch throughput, each figure beside the limit or peer measured in the same run.

(a) the raw limit: SendMessageBatch messages/s into LocalStack, our transport and its concurrency
    (SCHEDULER_RELAY_CONCURRENCY), no database, as many messages as (b) fires; measured before and
    after each run of (b), which is set against the higher of the two;
(b) our dispatcher: fires/s from due to enqueued, with 1k, 10k and 100k schedules due at once;
(c) peers at 10k: the original's per-fire work (scan, match the current minute, one SendMessage
    after another; see peers/original.py) and APScheduler 3 (SQLAlchemyJobStore on the same
    PostgreSQL, jobs sending the same message), each party seeded with the same mix of patterns
    and zones and timed ``--peer-rounds`` times in turn (median);
(d) the claim query with 1,000,000 schedules stored and 1% due: EXPLAIN ANALYZE of one batch
    (the plan must be an index scan), beside the same query with 1,000 stored;
(e) peak RSS of the long-running dispatcher process with 1,000,000 stored while it fires the due 1%.

Targets: (b) >= 80% of (a), and (b)'s CPU per fire <= 1.3x the bare sender's (the CPU per message
of (a)'s process, measured beside it); (c) ours >= 5x both peers at 10k; (d) < 50 ms;
(e) < 200 MB. ``--json`` writes the figures (bench/capacity.py reads them).

    flock /tmp/khs-bench.lock uv run python bench/dispatch.py               # about 15 minutes
    flock /tmp/khs-bench.lock uv run python bench/dispatch.py --sizes 1000,10000 --stored 100000

PostgreSQL on 127.0.0.1:5432 (BENCH_DATABASE_ADMIN_URL) must be running. LocalStack is started
for the run on a port of its own (from scripts/localstack.sh's venv), so that other tests' SQS
traffic on the shared one does not take turns with ours; --shared-localstack uses
AWS_ENDPOINT_URL's instead. Each line shows CPU per message here, in LocalStack and in the
PostgreSQL backends serving us. Exit code 0 when every target measured is met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.config import Settings, load_settings
from keeperhub_scheduler.db.statements import due_statement
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.processes import freeze_startup_heap, opened_for_dispatcher
from keeperhub_scheduler.transport.base import OutgoingMessage
from keeperhub_scheduler.transport.sqs import BATCH_LIMIT, QueueEndpoint, SqsTransport
from peers.aps import apscheduler_run
from peers.common import (
    HUGE_GRACE_SECONDS,
    SIGNING_KEY,
    Timer,
    add_localstack_arguments,
    clean_up_on_sigterm,
    count,
    current_minute,
    endpoint_url,
    fresh_database,
    fresh_queue,
    load,
    localstack,
    message,
    queue_depth,
    rate,
    seed_due,
    seed_mix,
)
from peers.measure import Cpu, PerMessage, high_water_mb
from peers.original import original_tick

CONCURRENCY = Settings.model_fields["scheduler_relay_concurrency"].default


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # what, measured, beside
    checks: list[tuple[str, bool]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def row(self, what: str, measured: str, beside: str = "") -> None:
        self.rows.append((what, measured, beside))
        print(f"  {what:<58} {measured:>16}  {beside}", flush=True)

    def check(self, target: str, met: bool) -> None:
        self.checks.append((target, met))


def settings_for(url: str, queue: QueueEndpoint, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "sqs_queue_url": queue.queue_url,
        "scheduler_dlq_url": queue.dlq_url,
        "aws_endpoint_url": endpoint_url(),
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "scheduler_signing_key": SIGNING_KEY.decode(),
        "scheduler_misfire_grace_seconds": HUGE_GRACE_SECONDS,
        "scheduler_health_port": 0,
    }
    return load_settings(**(values | overrides))


# --- (a) -----------------------------------------------------------------------------------------
async def raw_limit(messages: int) -> tuple[float, PerMessage]:
    """SendMessageBatch msg/s: ``CONCURRENCY`` calls in flight, full batches, no database."""
    prepared = [OutgoingMessage(f"r{n}", *message(f"s{n}")) for n in range(messages)]
    batches = [prepared[i : i + BATCH_LIMIT] for i in range(0, messages, BATCH_LIMIT)]
    async with fresh_queue("raw") as queue:
        transport = await SqsTransport(queue, send_concurrency=CONCURRENCY).start()
        try:
            await transport.send(batches[0])  # connect once, as a running dispatcher has
            freeze_startup_heap()  # as ``ours`` does
            remaining = iter(batches[1:])

            async def sender() -> int:
                return sum([len(await transport.send(batch)) for batch in remaining])

            before = Cpu.now()
            with Timer() as timer:
                sent = sum(await asyncio.gather(*(sender() for _ in range(CONCURRENCY))))
            cpu = before.per_message(Cpu.now(), sent)
        finally:
            await transport.close()
        assert await queue_depth(queue) == messages
    return rate(sent, timer.seconds), cpu


# --- (b) -----------------------------------------------------------------------------------------
POOL_IN_USE = (
    4  # connections a pass holds at once: the claim, the leftover feed, the marker, one more
)


async def open_pool(engine: AsyncEngine, count: int) -> None:
    """Open ``count`` pooled connections at once, as a dispatcher that has been busy has them: a
    pass over an empty database opens one, and the measured pass would open the others, a cost
    a running dispatcher paid once long before."""
    stack = contextlib.AsyncExitStack()
    async with stack:
        for _ in range(count):
            await stack.enter_async_context(engine.connect())


async def ours(size: int, mix: bool = False) -> tuple[float, dict[str, Any]]:
    """Fires/s of a running dispatcher when ``size`` schedules become due at once.

    The dispatcher makes one pass over the empty database first (connections open, statements
    compiled, as in a dispatcher that has been up for a while); then the schedules are written,
    all due, and the clock runs from the next pass until every run is enqueued. With ``mix``
    they are the peers' mix of patterns and zones, due at the current minute; otherwise one
    yearly pattern in UTC, due last New Year (any size, no minute to fit in).
    """
    with fresh_database("ours") as url:
        async with fresh_queue("ours") as queue:
            settings = settings_for(url, queue)
            async with opened_for_dispatcher(settings) as (engine, transport):
                dispatcher = Dispatcher(engine, transport, settings)
                await transport.check()
                await dispatcher.run_pass()
                await open_pool(engine, POOL_IN_USE)
                # As the dispatcher process does once it is up (processes.run_dispatcher): the
                # clients built since are set aside from the garbage collector's full walks.
                freeze_startup_heap()
                if mix:
                    await asyncio.to_thread(seed_mix, url, size, current_minute())
                else:
                    await asyncio.to_thread(seed_due, url, size)
                passes = []
                relayed = 0
                before = Cpu.now(url)
                with Timer() as timer:
                    while relayed < size:
                        result = await dispatcher.run_pass()
                        passes.append(result.log_fields())
                        relayed += result.relayed
                cpu = before.per_message(Cpu.now(url), size)
            enqueued = count(url, "SELECT count(*) FROM schedule_runs WHERE status = 'enqueued'")
            assert enqueued == size, (enqueued, size)
            assert await queue_depth(queue) == size
    return rate(size, timer.seconds), {"seconds": timer.seconds, "passes": passes, "cpu": cpu}


# --- (c) -----------------------------------------------------------------------------------------
async def original(size: int) -> float:
    with fresh_database("original") as url:
        at = current_minute()
        seed_mix(url, size, at)
        async with fresh_queue("original") as queue:
            with Timer() as timer:
                sent = await original_tick(url, queue, at)
            assert sent == size, sent
            assert await queue_depth(queue) == size
    return rate(size, timer.seconds)


async def apscheduler(size: int) -> float:
    with fresh_database("aps") as url:
        async with fresh_queue("aps") as queue:
            seconds = await apscheduler_run(url, queue, size, current_minute())
            assert await queue_depth(queue) == size
    return rate(size, seconds)


# --- (d) -----------------------------------------------------------------------------------------
def claim_query_plan(url: str, batch_size: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the claim's query (in a rolled-back transaction), five times."""
    statement = due_statement(datetime.now(UTC), batch_size)
    sql = str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    times = []
    plan: dict[str, Any] = {}
    with psycopg.connect(url) as connection:
        for _ in range(5):
            row = connection.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").fetchone()  # type: ignore[arg-type]
            connection.rollback()
            assert row is not None
            plan = row[0][0]
            times.append(plan["Execution Time"] + plan["Planning Time"])
    nodes = sorted(set(_node_types(plan["Plan"])))
    return {
        "milliseconds": statistics.median(times),
        "nodes": nodes,
        "rows": plan["Plan"]["Actual Rows"],
    }


def _node_types(node: dict[str, Any]) -> list[str]:
    found = [f"{node['Node Type']}" + (f" on {node['Index Name']}" if "Index Name" in node else "")]
    for child in node.get("Plans", []):
        found += _node_types(child)
    return found


# --- (e) -----------------------------------------------------------------------------------------
def peak_rss_mb(settings_env: dict[str, str], url: str, due: int, log: Path) -> tuple[float, float]:
    """The long-running dispatcher process until the due runs are enqueued and it idled 5 s.

    Returns (peak RSS in MB, seconds until all were enqueued).
    """
    started = time.monotonic()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "keeperhub_scheduler.cli", "dispatcher"],
            env=settings_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        while count(url, "SELECT count(*) FROM schedule_runs WHERE status = 'enqueued'") < due:
            if process.poll() is not None:
                raise RuntimeError(f"dispatcher exited; see {log}")
            time.sleep(0.2)
        done = time.monotonic() - started
        time.sleep(5)  # idle ticks over a million stored rows
        peak = high_water_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return peak, done


def environment(url: str, queue: QueueEndpoint) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": url,
        "SQS_QUEUE_URL": queue.queue_url,
        "SCHEDULER_DLQ_URL": queue.dlq_url or "",
        "AWS_ENDPOINT_URL": endpoint_url(),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SCHEDULER_SIGNING_KEY": SIGNING_KEY.decode(),
        "SCHEDULER_MISFIRE_GRACE_SECONDS": str(HUGE_GRACE_SECONDS),
        "SCHEDULER_HEALTH_PORT": "0",
    }


async def million(report: Report, stored: int, workdir: Path) -> None:
    due = stored // 100
    batch = Settings.model_fields["scheduler_claim_batch_size"].default
    with fresh_database("small") as url:
        seed_due(url, 10, stored=1000)
        small = claim_query_plan(url, batch)
    with fresh_database("million") as url:
        with Timer() as seeding:
            seed_due(url, due, stored=stored)
        big = claim_query_plan(url, batch)
        report.data["claim_query"] = {"stored_1000": small, f"stored_{stored}": big}
        index_scan = any("Index Scan on ix_workflow_schedules_due" in n for n in big["nodes"])
        report.row(
            f"(d) claim query, {stored:,} stored, {due:,} due (batch {batch})",
            f"{big['milliseconds']:.1f} ms",
            f"1,000 stored: {small['milliseconds']:.1f} ms; "
            f"{'index scan' if index_scan else 'NO INDEX SCAN'} ({', '.join(big['nodes'])})",
        )
        report.check("(d) claim query < 50 ms, index scan", big["milliseconds"] < 50 and index_scan)
        async with fresh_queue("million") as queue:
            rss, seconds = peak_rss_mb(environment(url, queue), url, due, workdir / "rss.log")
        report.data["rss"] = {"peak_mb": rss, "due": due, "seconds_to_enqueue": seconds}
        report.row(
            f"(e) dispatcher peak RSS, {stored:,} stored",
            f"{rss:.0f} MB",
            f"fired the {due:,} due in {seconds:.1f} s from its start"
            f" (seeding took {seeding.seconds:.0f} s)",
        )
        report.check("(e) peak RSS < 200 MB", rss < 200)


async def throughput(report: Report, arguments: argparse.Namespace) -> None:
    """(a) and (b), interleaved: each run of ours is set against raw runs of the same size either
    side of it (a burst of 1,000 pays its ramp-up in both; 100,000 is set against the largest
    raw run, ``--raw-messages``).

    The machine is shared, so one figure alone says little; the ratio of neighbours says more,
    and the median of a few repetitions more again.
    """
    raws: list[float] = []
    for size in arguments.sizes:
        messages = min(size, arguments.raw_messages)
        raw, raw_cpu = await raw_limit(messages)
        report.row(
            f"(a) raw SendMessageBatch, {messages:,} msgs", f"{raw:,.0f} msg/s", str(raw_cpu)
        )
        raws.append(raw)
        # A small size is over in a fraction of a second, where one scheduling hiccup moves its
        # figures by a tenth: it is repeated until it has sent as many fires as one 10k run.
        repetitions = max(arguments.repeat, -(-10_000 // size)) if size <= 10_000 else 1
        fires_each, shares, cpu_ratios, ours_cpu, postgres_cpu, raw_cpus = [], [], [], [], [], []
        for _ in range(repetitions):
            fires, detail = await ours(size)
            cpu: PerMessage = detail["cpu"]
            report.row(
                f"(b) our dispatcher, {size:,} due at once", f"{fires:,.0f} fires/s", str(cpu)
            )
            after, after_cpu = await raw_limit(messages)
            report.row(
                f"(a) raw SendMessageBatch, {messages:,} msgs",
                f"{after:,.0f} msg/s",
                str(after_cpu),
            )
            raws.append(after)
            fires_each.append(fires)
            shares.append(fires / max(raw, after))
            # The bare sender's CPU per message: the mean of the raw runs either side.
            bare = (raw_cpu.here_us + after_cpu.here_us) / 2
            cpu_ratios.append(cpu.here_us / bare)
            ours_cpu.append(cpu.here_us)
            postgres_cpu.append(cpu.postgres_us or 0.0)
            raw_cpus.append(bare)
            raw, raw_cpu = after, after_cpu
        fires, share = statistics.median(fires_each), statistics.median(shares)
        cpu_ratio = statistics.median(cpu_ratios)
        report.data[f"ours_{size}"] = {
            "fires_per_second": fires,
            "share_of_raw": shares,
            "dispatcher_cpu_us_per_fire": statistics.median(ours_cpu),
            "postgres_cpu_us_per_fire": statistics.median(postgres_cpu),
            "bare_sender_cpu_us_per_message": statistics.median(raw_cpus),
            "cpu_ratio_to_bare_sender": cpu_ratios,
        }
        report.row(
            f"    (b) {size:,}: median of {repetitions}",
            f"{fires:,.0f} fires/s",
            f"{share:.0%} of the raw limit beside it (target >= 80%)",
        )
        report.row(
            f"    (b) {size:,}: CPU per fire, median of {repetitions}",
            f"{statistics.median(ours_cpu):.0f} us/fire",
            f"bare sender {statistics.median(raw_cpus):.0f} us/msg beside it:"
            f" {cpu_ratio:.2f}x (target <= 1.3x)",
        )
        report.check(f"(b) {size:,} >= 80% of (a)", share >= 0.8)
        report.check(f"(b) {size:,} CPU per fire <= 1.3x the bare sender's", cpu_ratio <= 1.3)
    report.data["raw"] = raws


async def peers(report: Report, size: int, rounds: int) -> None:
    """(c): ours and each peer on the same mix of patterns and zones, ``rounds`` times in turn
    (ours, original, APScheduler, ours, ...), so that a slow spell of the machine falls on all of
    them; each party's median is compared."""
    parties = {
        "ours": lambda: ours(size, mix=True),
        "original": lambda: _rate_only(original(size)),
        "APScheduler 3": lambda: _rate_only(apscheduler(size)),
    }
    rates: dict[str, list[float]] = {name: [] for name in parties}
    for _ in range(rounds):
        for name, run in parties.items():
            fires, _ = await run()
            rates[name].append(fires)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    report.data["peers"] = {"size": size, "rates": rates, "medians": medians}
    report.row(
        f"(c) ours, {size:,} due (mix), median of {rounds}", f"{medians['ours']:,.0f} fires/s"
    )
    for name in ("original", "APScheduler 3"):
        ratio = medians["ours"] / medians[name]
        report.row(
            f"(c) {name}, {size:,} due (mix), median of {rounds}",
            f"{medians[name]:,.0f} fires/s",
            f"ours {ratio:.1f}x",
        )
        report.check(f"(c) ours >= 5x {name}", ratio >= 5)


async def _rate_only(work: Awaitable[float]) -> tuple[float, None]:
    return await work, None


async def main(arguments: argparse.Namespace) -> int:
    with localstack(not arguments.shared_localstack, arguments.workdir) as url:
        print(f"LocalStack at {url}", flush=True)
        return await measure(arguments)


async def measure(arguments: argparse.Namespace) -> int:
    # As the dispatcher process does once it is up (processes.run_dispatcher): without it every
    # full collection walks botocore's models again, for ours and the bare sender alike.
    freeze_startup_heap()
    report = Report()
    print(f"dispatch benchmark, {load()}, send concurrency {CONCURRENCY}", flush=True)
    if "throughput" not in arguments.skip:
        await throughput(report, arguments)
    if "peers" not in arguments.skip:
        await peers(report, arguments.peer_size, arguments.peer_rounds)
    if "million" not in arguments.skip:
        await million(report, arguments.stored, arguments.workdir)
    print(f"done, {load()}")
    for target, met in report.checks:
        print(f"  {'met ' if met else 'MISSED'} {target}")
    if arguments.json:
        arguments.json.write_text(json.dumps(report.data, indent=2, default=str))
    return 0 if all(met for _, met in report.checks) else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10_000, 100_000]
    )
    parser.add_argument("--peer-size", type=int, default=10_000)
    parser.add_argument("--peer-rounds", type=int, default=3, help="alternating runs of (c)")
    parser.add_argument("--raw-messages", type=int, default=20_000, help="largest raw run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of (b) at 10k; smaller sizes: 10k fires in all"
    )
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--skip", default="", help="comma list of: throughput, peers, million")
    parser.add_argument("--json", type=Path, help="write the figures here")
    add_localstack_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    clean_up_on_sigterm()
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
