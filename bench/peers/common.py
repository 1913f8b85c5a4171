"""What the dispatch benchmarks and their peers share: real servers, bulk rows, the message.

Every measurement gets a fresh PostgreSQL database (migrated) and a fresh LocalStack queue, so no
run inherits another's bloat or backlog. Rows are written in bulk with ``generate_series`` as the
scheduler would have planned them (the session flag keeps the replan trigger out of the way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy.engine import make_url

from keeperhub_scheduler.db.migrate import upgrade
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.timing import ONE_MICROSECOND, Timing
from keeperhub_scheduler.transport.messages import encode
from keeperhub_scheduler.transport.sqs import QueueEndpoint, open_client, setup_queues

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*
from bench.harness import clean_up_on_sigterm  # noqa: F401  (for dispatch*.py)
from tests.dispatcher.private_localstack import PrivateLocalStack

ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SHARED_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
_endpoint: list[str] = [SHARED_ENDPOINT]  # the LocalStack in use; see ``localstack``
_localstack_pid: list[int | None] = [None]
SHARED_PID_FILE = Path(__file__).resolve().parents[2] / ".cache" / "localstack" / "localstack.pid"


def endpoint_url() -> str:
    return _endpoint[0]


def localstack_pid() -> int | None:
    """The PID of the LocalStack in use (for its CPU time), when known."""
    if _localstack_pid[0] is not None:
        return _localstack_pid[0]
    try:
        return int(SHARED_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


SIGNING_KEY = b"bench-signing-key"
YEARLY = "0 0 1 1 *"
# One occurrence each, due at the same instant: the last New Year. The dispatchers measured are
# given a misfire grace long enough that it counts as on time (one fire, not a coalesced skip).
DUE_AT = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
HUGE_GRACE_SECONDS = 400 * 24 * 3600


# --- databases -----------------------------------------------------------------------------------
def _admin(statement: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


@contextlib.contextmanager
def fresh_database(prefix: str = "bench") -> Iterator[str]:
    """A new, migrated database; dropped afterwards."""
    name = f"khs_{prefix}_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_due(url: str, due: int, stored: int | None = None, cron: str = YEARLY) -> None:
    """``stored`` schedules (default ``due``), of which ``due`` are due at ``DUE_AT``.

    The others are planned for next New Year: stored, enabled, not due.
    """
    stored = stored or due
    timing = Timing.of(cron)
    later = DUE_AT.replace(year=DUE_AT.year + 1)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET keeperhub_scheduler.writer = 'on'")
        connection.execute(
            "INSERT INTO workflows (id, name, enabled)"
            " SELECT 'wf' || n, 'bench', true FROM generate_series(1, %s) n",
            (stored,),
        )
        connection.execute(
            "INSERT INTO workflow_schedules"
            " (id, workflow_id, cron_expression, decided_through, next_run_at, plan_key)"
            " SELECT 's' || n, 'wf' || n, %(cron)s, %(before)s,"
            " CASE WHEN n <= %(due)s THEN %(due_at)s ELSE %(later)s END, %(key)s"
            " FROM generate_series(1, %(stored)s) n",
            {
                "cron": cron,
                "before": DUE_AT.replace(year=DUE_AT.year - 1),
                "due": due,
                "due_at": DUE_AT,
                "later": later,
                "key": timing.plan_key(0),
                "stored": stored,
            },
        )
        connection.execute("VACUUM ANALYZE")


# A realistic mix: every minute, hourly, daily, weekdays and monthly patterns in seven zones (one
# with a half-hour offset), all firing at the same instant, each one's next occurrence a minute
# or more later. Every party is seeded with it (``seed_mix``), so each parses and matches the
# same expressions in the same zones.
MIX_ZONES = (
    "UTC", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata",
    "Asia/Tokyo", "Australia/Sydney",
)  # fmt: skip


def mixed_timings(at: datetime) -> list[tuple[str, str]]:
    """(cron expression, zone) pairs that all fire at ``at`` (a whole minute), and not before."""
    pairs = []
    for zone in MIX_ZONES:
        local = at.astimezone(ZoneInfo(zone))
        minute, hour, day, weekday = local.minute, local.hour, local.day, local.isoweekday() % 7
        patterns = [
            "* * * * *",
            f"{minute} * * * *",
            f"{minute} {hour} * * *",
            f"{minute} {hour} * * {weekday}",
            f"{minute} {hour} {day} * *",
        ]
        patterns += [f"*/{step} * * * *" for step in (5, 15) if minute % step == 0]
        pairs += [(pattern, zone) for pattern in patterns]
    for expression, zone in pairs:
        assert Timing.of(expression, zone).next_after(at - ONE_MICROSECOND) == at, expression
    return pairs


def current_minute(room_seconds: float = 25.0) -> datetime:
    """The current whole minute, once at least ``room_seconds`` of it are left (a run that
    crossed into the next minute would see the every-minute schedules due twice)."""
    now = datetime.now(UTC)
    if now.second + now.microsecond / 1e6 > 60 - room_seconds:
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
        now = datetime.now(UTC)
    return now.replace(second=0, microsecond=0)


def seed_mix(url: str, due: int, at: datetime) -> None:
    """``due`` schedules of the mix, cycled, each due at ``at`` and decided up to just before."""
    pairs = mixed_timings(at)
    keys = [Timing.of(expression, zone).plan_key(0) for expression, zone in pairs]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET keeperhub_scheduler.writer = 'on'")
        connection.execute(
            "INSERT INTO workflows (id, name, enabled)"
            " SELECT 'wf' || n, 'bench', true FROM generate_series(1, %s) n",
            (due,),
        )
        connection.execute(
            "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone,"
            " decided_through, next_run_at, plan_key)"
            " SELECT 's' || n, 'wf' || n, (%(crons)s::text[])[i], (%(zones)s::text[])[i],"
            " %(before)s, %(at)s, (%(keys)s::text[])[i]"
            " FROM generate_series(1, %(due)s) n, LATERAL (SELECT 1 + n %% %(k)s AS i) pick",
            {
                "crons": [expression for expression, _ in pairs],
                "zones": [zone for _, zone in pairs],
                "keys": keys,
                "before": at - ONE_MICROSECOND,
                "at": at,
                "due": due,
                "k": len(pairs),
            },
        )
        connection.execute("VACUUM ANALYZE")


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(sql).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


# --- queues --------------------------------------------------------------------------------------
def add_localstack_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workdir`` and ``--shared-localstack``: what ``localstack()`` is called with."""
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument(
        "--shared-localstack",
        action="store_true",
        help="use AWS_ENDPOINT_URL's LocalStack instead of starting one of our own",
    )


@contextlib.contextmanager
def localstack(private: bool, workdir: Path) -> Iterator[str]:
    """The LocalStack to measure against: by default one of the benchmark's own.

    LocalStack is one Python process: on the shared one every other test's SQS traffic takes
    its turn between ours, and the limit (a) would move while (b) runs.
    """
    if not private:
        _endpoint[0] = SHARED_ENDPOINT
        yield SHARED_ENDPOINT
        return
    instance = PrivateLocalStack(workdir / f"localstack-{os.getpid()}")
    instance.start()
    _endpoint[0] = instance.endpoint_url
    _localstack_pid[0] = instance.process.pid if instance.process else None
    try:
        yield instance.endpoint_url
    finally:
        instance.stop()
        _endpoint[0] = SHARED_ENDPOINT
        _localstack_pid[0] = None


def endpoint(name: str) -> QueueEndpoint:
    account = f"{endpoint_url()}/000000000000"
    return QueueEndpoint(
        queue_url=f"{account}/{name}",
        dlq_url=f"{account}/{name}-dlq",
        region="us-east-1",
        endpoint_url=endpoint_url(),
        access_key_id="test",
        secret_access_key="test",
    )


@contextlib.asynccontextmanager
async def fresh_queue(prefix: str = "bench") -> AsyncIterator[QueueEndpoint]:
    queue = endpoint(f"{prefix}-{secrets.token_hex(4)}")
    await setup_queues(queue, visibility_timeout=30, max_receive_count=10)
    try:
        yield queue
    finally:
        async with AsyncExitStack() as stack:
            client = await open_client(queue, stack, pool=2)
            for url in (queue.queue_url, queue.dlq_url):
                with contextlib.suppress(Exception):
                    await client.delete_queue(QueueUrl=url)


async def queue_depth(queue: QueueEndpoint) -> int:
    async with AsyncExitStack() as stack:
        client = await open_client(queue, stack, pool=2)
        answer = await client.get_queue_attributes(
            QueueUrl=queue.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
    return int(answer["Attributes"]["ApproximateNumberOfMessages"])


def message(schedule_id: str, run_id: str | None = None) -> tuple[str, dict[str, str]]:
    """The body and attributes our dispatcher sends, for schedule ``schedule_id``."""
    run = RunRef(
        run_id=run_id or secrets.token_hex(16),
        workflow_id=f"wf{schedule_id[1:]}",
        schedule_id=schedule_id,
        scheduled_for=DUE_AT,
    )
    return encode(run, SIGNING_KEY)


def sqs_attributes(attributes: dict[str, str]) -> dict[str, Any]:
    return {
        name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
    }


# --- reporting -----------------------------------------------------------------------------------
@dataclass
class Timer:
    started: float = 0.0
    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def rate(done: int, seconds: float) -> float:
    return done / seconds if seconds > 0 else float("inf")


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, default=str))


async def wait_until(predicate: Any, timeout: float, every: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise TimeoutError("benchmark did not finish in time")
        await asyncio.sleep(every)
