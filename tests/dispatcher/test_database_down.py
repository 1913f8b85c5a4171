"""The long-running dispatcher while its database is down: one line for the failure (not a
traceback a second), /readyz unavailable, /healthz still alive (the loop turns; restarting the
process would not bring the database back), and back to work with a line that says so."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from keeperhub_scheduler.config import load_settings
from keeperhub_scheduler.db.engine import create_engine
from keeperhub_scheduler.dispatcher.loop import Dispatcher
from keeperhub_scheduler.telemetry.health import Heartbeat
from keeperhub_scheduler.transport.database import DatabaseTransport
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.support import postgres, processes
from tests.support.standin import free_port

SPLIT_AT = 16 * 1024  # Docker and Kubernetes cut a longer log line in two


def ready(port: int) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def wait_for_line(log: Path, message: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(line["msg"] == message for line in log_lines(log)):
        assert time.monotonic() < deadline, f"no {message!r}: {log.read_text()[-2000:]}"
        time.sleep(0.2)


async def test_a_database_outage_is_one_line_and_not_ready_until_it_ends(
    database_url: str, queue: QueueEndpoint, tmp_path: Path
) -> None:
    port = free_port()
    env = processes.environment(database_url, queue) | {"SCHEDULER_HEALTH_PORT": str(port)}
    log = tmp_path / "dispatcher.log"
    postgres.allow_connections(database_url, False)
    dispatcher = processes.spawn(["dispatcher"], env, log)
    try:
        wait_for_line(log, "dispatcher pass failed")
        time.sleep(6)  # six more passes, a second apart, that fail the same way
        status, body = ready(port)
        assert status == 503
        assert body["problems"]["database"] == "OperationalError"
        errors = [line for line in log_lines(log) if line["level"] == "error"]
        assert [line["msg"] for line in errors] == ["dispatcher pass failed"], errors
        assert "is not currently accepting connections" in errors[0]["error"]
        assert all(len(line) < SPLIT_AT for line in log.read_text().splitlines())

        postgres.allow_connections(database_url, True)
        wait_for_line(log, "dispatcher pass recovered")
        assert ready(port)[0] == 200
        [recovered] = [
            line for line in log_lines(log) if line["msg"] == "dispatcher pass recovered"
        ]
        assert recovered["failures"] >= 6
    finally:
        postgres.allow_connections(database_url, True)
        assert processes.kill(dispatcher, signal.SIGTERM) == 0


async def test_liveness_holds_through_a_database_outage_longer_than_its_silence(
    database_url: str,
) -> None:
    """Liveness means "the loop turns", readiness "the database answers": a pass that fails
    because the database is away is a turn, so Kubernetes does not restart a process that is
    only waiting for its database. (The silence is 2 s here instead of 30 s, to keep it short.)"""
    settings = load_settings(database_url=database_url, sqs_queue_url=None)
    engine = create_engine(database_url)
    dispatcher = Dispatcher(engine, DatabaseTransport(engine, None), settings)
    dispatcher.heartbeat = Heartbeat(max_silence=2.0)
    stop = asyncio.Event()
    postgres.allow_connections(database_url, False)
    loop = asyncio.create_task(dispatcher.run_forever(stop))
    try:
        await asyncio.sleep(5)  # an outage well past the silence liveness allows
        assert dispatcher.heartbeat.alive
    finally:
        postgres.allow_connections(database_url, True)
        stop.set()
        await loop
        await engine.dispose()
