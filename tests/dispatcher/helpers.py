"""What the dispatcher tests share: rows written as the scheduler or as KeeperHub writes them,
a dispatcher in this event loop, and the queue's messages decoded and checked.

Rows are written with plain psycopg. A connection ``as_scheduler`` sets the session flag our
engine sets, so the replan trigger leaves its writes alone (a schedule planned as our service
plans it); any other connection writes the way KeeperHub's app does, and the trigger reacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from keeperhub_scheduler.config import Settings, load_settings
from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.timing import Timing, next_due
from keeperhub_scheduler.transport.messages import decode
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.support import sqs

SIGNING_KEY = "signing-key"  # what tests.support.processes.environment gives the processes
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def connect(url: str, *, as_scheduler: bool = False) -> psycopg.Connection[dict[str, Any]]:
    connection = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    if as_scheduler:
        connection.execute("SET keeperhub_scheduler.writer = 'on'")
    return connection


def db_now(url: str) -> datetime:
    with connect(url) as connection:
        row = connection.execute("SELECT now() AS now").fetchone()
    assert row is not None
    return utc(row["now"])


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def floor_minute(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


def add_workflow(url: str, workflow_id: str, *, enabled: bool = True) -> None:
    with connect(url) as connection:
        connection.execute(
            "INSERT INTO workflows (id, name, enabled) VALUES (%s, %s, %s)",
            (workflow_id, f"workflow {workflow_id}", enabled),
        )


def timing_of(row: dict[str, Any]) -> Timing:
    return Timing.of(
        row["cron_expression"],
        row["timezone"],
        interval_seconds=row["interval_seconds"],
        anchor_at=row["anchor_at"],
        start_at=row["start_at"],
        end_at=row["end_at"],
    )


def plan(
    schedule_id: str, timing: Timing, decided_through: datetime, jitter_seconds: int = 0
) -> dict[str, Any]:
    """The planning columns our service writes for a timing applying after ``decided_through``."""
    upcoming = next_due(timing, schedule_id, jitter_seconds, decided_through)
    return {
        "decided_through": decided_through,
        "next_run_at": upcoming[1] if upcoming else None,
        "plan_key": timing.plan_key(jitter_seconds),
    }


def add_planned_schedule(
    url: str,
    schedule_id: str,
    cron: str = "* * * * *",
    *,
    decided_through: datetime | None = None,
    workflow_enabled: bool = True,
    **columns: Any,
) -> None:
    """A workflow and its schedule, planned as the scheduler plans it (the trigger stays out).

    ``decided_through`` defaults to now; ``next_run_at`` follows from it unless given.
    """
    add_workflow(url, f"wf-{schedule_id}", enabled=workflow_enabled)
    values: dict[str, Any] = {
        "id": schedule_id,
        "workflow_id": f"wf-{schedule_id}",
        "cron_expression": cron,
        "timezone": "UTC",
    } | columns
    timing = Timing.of(
        values["cron_expression"] if values.get("interval_seconds") is None else None,
        values["timezone"],
        interval_seconds=values.get("interval_seconds"),
        anchor_at=values.get("anchor_at"),
        start_at=values.get("start_at"),
        end_at=values.get("end_at"),
    )
    values["cron_expression"] = timing.cron_expression
    planned = plan(
        schedule_id, timing, decided_through or db_now(url), values.get("jitter_seconds", 0)
    )
    insert_schedule_row(url, planned | values)  # an explicit next_run_at wins


def insert_schedule_row(url: str, values: dict[str, Any]) -> None:
    """A workflow_schedules row with exactly these columns, written as KeeperHub's app writes it."""
    names = ", ".join(values)
    placeholders = ", ".join(f"%({name})s" for name in values)
    with connect(url, as_scheduler=True) as connection:
        connection.execute(
            f"INSERT INTO workflow_schedules ({names}) VALUES ({placeholders})",  # type: ignore[arg-type]
            values,
        )


def keeperhub_write(url: str, statement: str, *arguments: Any) -> None:
    """A write the way KeeperHub's app makes it: a plain session, the trigger reacts."""
    with connect(url) as connection:
        connection.execute(statement, arguments)  # type: ignore[arg-type]


def schedule_row(url: str, schedule_id: str) -> dict[str, Any]:
    with connect(url) as connection:
        row = connection.execute(
            "SELECT * FROM workflow_schedules WHERE id = %s", (schedule_id,)
        ).fetchone()
    assert row is not None, schedule_id
    return row


def runs_of(url: str, schedule_id: str | None = None) -> list[dict[str, Any]]:
    """The schedule's runs (or all), oldest occurrence first, times in UTC."""
    where, arguments = ("WHERE schedule_id = %s", (schedule_id,)) if schedule_id else ("", ())
    with connect(url) as connection:
        rows = connection.execute(
            f"SELECT * FROM schedule_runs {where} ORDER BY scheduled_for",  # type: ignore[arg-type]
            arguments,
        ).fetchall()
    for row in rows:
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = utc(value)
    return rows


def fired(runs: list[dict[str, Any]]) -> list[datetime]:
    return [run["scheduled_for"] for run in runs if run["status"] != "skipped"]


def skips(runs: list[dict[str, Any]]) -> list[tuple[str, datetime, datetime, int | None]]:
    """(reason, first, last, count) of each skip row."""
    return [
        (run["skip_reason"], run["scheduled_for"], run["scheduled_until"], run["occurrences"])
        for run in runs
        if run["status"] == "skipped"
    ]


def occurrences_between(timing: Timing, after: datetime, through: datetime) -> list[datetime]:
    """The timing's occurrences in (after, through]."""
    found = []
    for occurrence in timing.occurrences_after(after):
        if occurrence > through:
            break
        found.append(occurrence)
    return found


# --- the dispatcher in this event loop -------------------------------------------------------
def dispatcher_settings(url: str, queue: QueueEndpoint, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "sqs_queue_url": queue.queue_url,
        "scheduler_dlq_url": queue.dlq_url,
        "aws_endpoint_url": queue.endpoint_url,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "scheduler_signing_key": SIGNING_KEY,
        "scheduler_health_port": 0,
    }
    return load_settings(**(values | overrides))


@contextlib.asynccontextmanager
async def running_dispatcher(
    url: str, queue: QueueEndpoint, **overrides: Any
) -> AsyncIterator[Dispatcher]:
    settings = dispatcher_settings(url, queue, **overrides)
    engine = create_engine(url, pool_size=4)
    transport = await SqsTransport(
        QueueEndpoint.from_settings(settings), send_concurrency=8
    ).start()
    try:
        yield Dispatcher(engine, transport, settings)
    finally:
        await transport.close()
        await engine.dispose()


async def run_for(dispatcher: Dispatcher, seconds: float) -> None:
    """The long-running loop (sleeps, LISTEN wake-ups and all) for ``seconds``, then stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(seconds, stop.set)
    await dispatcher.run_forever(stop)


# --- the queue ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    message: RunRef
    body: dict[str, Any]


async def drain(queue: QueueEndpoint, expect: int, wait: float = 20.0) -> list[Received]:
    """Receive and delete what is in the queue; every message must be signed and valid.

    Waits for ``expect`` messages (up to ``wait`` seconds), then for one more empty second, so
    that a duplicate sent late is still seen.
    """
    raw = await sqs.receive_all(queue, queue.queue_url, expect=expect, wait=wait)
    raw += await sqs.receive_all(queue, queue.queue_url, expect=1, wait=1.0)
    return decoded(raw)


def decoded(raw: list[dict[str, Any]]) -> list[Received]:
    """SQS messages as the executor would read them: signed and valid, or the test fails."""
    received = []
    for message in raw:
        attributes = {
            name: value["StringValue"] for name, value in message["MessageAttributes"].items()
        }
        run = decode(message["Body"], attributes, SIGNING_KEY.encode(), require_signature=True)
        assert isinstance(run, RunRef), run  # ours always name their run
        received.append(Received(run, json.loads(message["Body"])))
    return received


def by_run_id(received: list[Received]) -> Counter[str]:
    return Counter(item.message.run_id for item in received)


def assert_one_message_per_run(received: list[Received], runs: list[dict[str, Any]]) -> None:
    """Every run that was sent has exactly one message, which says what the run says."""
    counts = by_run_id(received)
    duplicated = {run_id: count for run_id, count in counts.items() if count > 1}
    assert not duplicated, f"runs sent more than once: {duplicated}"
    sent = {run["id"]: run for run in runs if run["status"] != "skipped"}
    assert set(counts) == set(sent)
    for item in received:
        run = sent[item.message.run_id]
        assert item.message.schedule_id == run["schedule_id"]
        assert item.message.workflow_id == run["workflow_id"]
        assert item.message.scheduled_for == run["scheduled_for"]


@contextlib.contextmanager
def listening(
    url: str, channel: str = "keeperhub_scheduler_due"
) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"LISTEN {channel}")  # type: ignore[arg-type]
        yield connection


def notifications(connection: psycopg.Connection[Any]) -> int:
    """How many notifications arrived since the last call (waits briefly for stragglers)."""
    return sum(1 for _ in connection.notifies(timeout=0.5))


def add_many_schedules(
    url: str, prefix: str, count: int, cron: str, decided_through: datetime
) -> list[str]:
    """``count`` planned schedules (and workflows) with one timing, in two statements."""
    timing = Timing.of(cron)
    upcoming = timing.next_after(decided_through)
    with connect(url, as_scheduler=True) as connection:
        connection.execute(
            "INSERT INTO workflows (id, name, enabled)"
            " SELECT 'wf-' || %(prefix)s || n, 'load', true FROM generate_series(1, %(count)s) n",
            {"prefix": prefix, "count": count},
        )
        connection.execute(
            "INSERT INTO workflow_schedules"
            " (id, workflow_id, cron_expression, decided_through, next_run_at, plan_key)"
            " SELECT %(prefix)s || n, 'wf-' || %(prefix)s || n, %(cron)s, %(decided)s, %(next)s,"
            " %(key)s FROM generate_series(1, %(count)s) n",
            {
                "prefix": prefix,
                "count": count,
                "cron": cron,
                "decided": decided_through,
                "next": upcoming,
                "key": timing.plan_key(0),
            },
        )
    return [f"{prefix}{n}" for n in range(1, count + 1)]


def count_runs(url: str, where: str = "true") -> int:
    with connect(url) as connection:
        row = connection.execute(
            f"SELECT count(*) AS n FROM schedule_runs WHERE {where}"  # type: ignore[arg-type]
        ).fetchone()
    assert row is not None
    return int(row["n"])
