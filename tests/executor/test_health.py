"""The executor process's small HTTP port: liveness, readiness (database and queue reachable)
and Prometheus metrics, on ``SCHEDULER_HEALTH_PORT``."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler.telemetry.health import Heartbeat, health_app
from keeperhub_scheduler.transport.base import DepthProbe
from keeperhub_scheduler.transport.messages import sign
from keeperhub_scheduler.transport.sqs import QueueEndpoint, SqsTransport
from tests.executor.world import (
    SIGNING_KEY,
    add_runs,
    add_schedule,
    relay,
    send_raw,
    send_run,
    wait_for_runs,
    wait_until,
)
from tests.support.processes import environment, kill, spawn
from tests.support.standin import StandInProcess, free_port


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def standin_process(tmp_path: Path) -> Iterator[StandInProcess]:
    standin = StandInProcess(tmp_path / "standin.jsonl")
    yield standin
    kill(standin.process)


class HealthPort:
    """An executor process serving its health port; SIGTERMed at the end."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = spawn(
            ["executor"], env | {"SCHEDULER_HEALTH_PORT": str(self.port)}, tmp_path / "executor.log"
        )
        self.log = tmp_path / "executor.log"

    async def up(self) -> None:
        await wait_until(lambda: get(self.port, "/healthz")[0] != 0, 60, "the health port")

    def json(self, path: str) -> tuple[int, Any]:
        status, body = get(self.port, path)
        return status, json.loads(body)

    def stop(self) -> int:
        return kill(self.process, signal.SIGTERM)


def metric(text: str, name: str) -> float:
    """The value of one sample line, e.g. ``name{status="succeeded"}``."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name} in /metrics")


async def test_healthz_readyz_and_metrics_of_a_working_executor(
    tmp_path: Path,
    database_url: str,
    engine: AsyncEngine,
    queue: QueueEndpoint,
    transport: SqsTransport,
    standin_process: StandInProcess,
) -> None:
    schedule = await add_schedule(engine)
    retried, duplicated = await add_runs(engine, schedule, 2)
    off = await add_schedule(engine, enabled=False)
    [skipped] = await add_runs(engine, off)
    standin_process.post(
        "/_control/script", {"workflowId": schedule.workflow_id, "responses": [{"status": 500}]}
    )
    await relay(engine, transport)
    await send_raw(transport, "not json", {"Signature": sign("not json", SIGNING_KEY)})
    env = environment(
        database_url,
        queue,
        standin_process.url,
        SCHEDULER_RECEIVE_WAIT_SECONDS="1",
        SCHEDULER_RETRY_BASE_SECONDS="1",
        SCHEDULER_RETRY_MAX_SECONDS="1",
    )
    executor = HealthPort(tmp_path, env)
    try:
        await executor.up()
        assert executor.json("/healthz") == (200, {"alive": True})
        assert executor.json("/readyz") == (200, {"ready": True, "problems": {}})
        await wait_for_runs(engine, [retried, duplicated, skipped])
        await send_run(transport, engine, duplicated)
        await wait_until(
            lambda: "duplicates_dropped_total 1.0" in get(executor.port, "/metrics")[1],
            30,
            "the duplicate to be dropped",
        )
        status, text = get(executor.port, "/metrics")
    finally:
        assert executor.stop() == 0

    assert status == 200
    prefix = "keeperhub_scheduler_"
    assert metric(text, prefix + "messages_received_total") == 6
    assert metric(text, prefix + 'runs_finished_total{status="succeeded"}') == 2
    assert metric(text, prefix + "runs_retried_total") == 1
    assert metric(text, prefix + 'skipped_total{reason="schedule_disabled",stage="executor"}') == 1
    assert metric(text, prefix + 'dead_lettered_total{reason="invalid"}') == 1
    assert metric(text, prefix + "duplicates_dropped_total") == 1
    assert metric(text, prefix + 'keeperhub_call_seconds_count{outcome="succeeded"}') == 2
    assert metric(text, prefix + 'keeperhub_call_seconds_count{outcome="retry"}') == 1
    assert metric(text, prefix + "end_to_end_lag_seconds_count") == 3
    assert metric(text, prefix + "executions_in_flight") == 0
    assert metric(text, prefix + 'queue_messages{queue="main",state="visible"}') == 0
    assert metric(text, prefix + 'queue_messages{queue="dlq",state="visible"}') == 1


@pytest.mark.parametrize("down", ["queue", "database"])
async def test_readyz_answers_503_naming_what_cannot_be_reached(
    down: str, tmp_path: Path, database_url: str, queue: QueueEndpoint
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = environment(database_url, queue, SCHEDULER_RECEIVE_WAIT_SECONDS="1")
    if down == "queue":
        env |= {"AWS_ENDPOINT_URL": closed, "SQS_QUEUE_URL": f"{closed}/000000000000/gone"}
    else:
        env["DATABASE_URL"] = database_url.replace(":5432/", f":{closed.rsplit(':', 1)[1]}/")
    executor = HealthPort(tmp_path, env)
    try:
        await executor.up()
        status, body = executor.json("/readyz")
        liveness = executor.json("/healthz")
    finally:
        assert executor.stop() == 0

    assert status == 503
    assert body["ready"] is False
    assert list(body["problems"]) == [down]
    # Alive all the same: restarting the executor would not bring the queue or database back.
    assert liveness == (200, {"alive": True})


async def test_metrics_show_the_queue_depth_and_no_stale_depth_when_sqs_is_down(
    queue: QueueEndpoint, transport: SqsTransport
) -> None:
    for index in range(3):
        await send_raw(transport, f"message {index}", {})
    closed = replace(queue, endpoint_url=f"http://127.0.0.1:{free_port()}")
    unreachable = await SqsTransport(closed).start()
    try:
        up = await scrape(transport.depth)
        down = await scrape(unreachable.depth)
    finally:
        await unreachable.close()

    prefix = "keeperhub_scheduler_"
    assert metric(up, prefix + 'queue_messages{queue="main",state="visible"}') == 3
    assert metric(up, prefix + 'queue_messages{queue="dlq",state="visible"}') == 0
    assert prefix + "queue_messages{" not in down
    failures = metric(down, prefix + "queue_depth_failures_total")
    assert failures == metric(up, prefix + "queue_depth_failures_total") + 1


async def scrape(depth: DepthProbe) -> str:
    async def ready() -> dict[str, str]:
        return {}

    app = health_app(Heartbeat(60), ready, depth)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://x") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    return answer.text
