"""End to end: a schedule created through the API fires, reaches KeeperHub once per occurrence
with the contract's headers and body, and the database agrees with what happened.

Two modes, one scenario:
* production: PostgreSQL + LocalStack SQS, with the API, the dispatcher and the executor each in
  its own process, and the KeeperHub stand-in in another;
* embedded: ``keeperhub-scheduler dev`` (one process, SQLite, no queue) and the stand-in.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from keeperhub_scheduler.db.engine import sqlalchemy_url
from keeperhub_scheduler.db.migrate import upgrade
from keeperhub_scheduler.transport.messages import parse_instant
from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.support.processes import environment, spawn
from tests.support.standin import StandInProcess, free_port

pytestmark = pytest.mark.waits  # processes on the clock, some seconds each

TOKEN = "e2e-api-token-0123456789"
EVERY_TWO_SECONDS = "*/2 * * * * *"


@dataclass
class Pipeline:
    api: httpx.Client
    standin: StandInProcess
    database: Engine
    processes: list[Any] = field(default_factory=list)

    def calls_for(self, workflow_id: str) -> list[dict[str, Any]]:
        return [call for call in self.standin.calls() if call["workflowId"] == workflow_id]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def api_client(port: int) -> httpx.Client:
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    )

    def healthy() -> bool:
        try:
            return client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, 60, "the API to answer")
    return client


@pytest.fixture(params=["production", "embedded"])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pipeline]:
    standin = StandInProcess(tmp_path / "standin.jsonl")
    api_port = free_port()
    common = {
        "SCHEDULER_API_TOKENS": TOKEN,
        "SCHEDULER_API_PORT": str(api_port),
        "SCHEDULER_RECEIVE_WAIT_SECONDS": "1",
        "SCHEDULER_LOG_FORMAT": "text",
    }
    if request.param == "production":
        database_url: str = request.getfixturevalue("database_url")
        queue: QueueEndpoint = request.getfixturevalue("queue")
        env = environment(database_url, queue, keeperhub_url=standin.url, **common)
        commands = [["api"], ["dispatcher"], ["executor"]]
    else:
        database_url = f"sqlite:///{tmp_path / 'embedded.db'}"
        env = environment(database_url, None, keeperhub_url=standin.url, **common)
        commands = [["dev"]]
        upgrade(database_url)
    processes = [spawn(command, env, tmp_path / f"{command[0]}.log") for command in commands]
    database = create_engine(sqlalchemy_url(database_url, driver="sync"))
    try:
        yield Pipeline(api_client(api_port), standin, database, processes)
    finally:
        for process in processes:
            process.terminate()
        codes = [process.wait(timeout=60) for process in processes]
        standin.stop()
        database.dispose()
    # Every process drains and exits 0 on SIGTERM.
    assert codes == [0] * len(processes), f"exit codes {codes}; logs in {tmp_path}"


def create_workflow_and_schedule(pipeline: Pipeline, workflow_id: str) -> dict[str, Any]:
    answer = pipeline.api.post(
        "/v1/workflows", json={"id": workflow_id, "name": "e2e", "enabled": True}
    )
    assert answer.status_code == 201, answer.text
    answer = pipeline.api.post(
        "/v1/schedules",
        json={
            "workflow_id": workflow_id,
            "cron_expression": EVERY_TWO_SECONDS,
            "timezone": "Europe/Berlin",
        },
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_a_schedule_fires_reaches_keeperhub_once_per_occurrence_and_stops_when_told(
    pipeline: Pipeline,
) -> None:
    schedule = create_workflow_and_schedule(pipeline, "wf-e2e")
    wait_for(lambda: len(pipeline.calls_for("wf-e2e")) >= 4, 60, "four fires")

    calls = pipeline.calls_for("wf-e2e")
    check_contract(calls, schedule["id"])
    check_database(pipeline, schedule["id"])

    # Disabling the workflow stops the fires; occurrences meanwhile are skipped with a reason.
    assert pipeline.api.patch("/v1/workflows/wf-e2e", json={"enabled": False}).status_code == 200
    quiet_from = settle(pipeline, "wf-e2e")
    time.sleep(4)
    assert len(pipeline.calls_for("wf-e2e")) == quiet_from
    with pipeline.database.connect() as connection:
        reasons = connection.execute(
            text("SELECT DISTINCT skip_reason FROM schedule_runs WHERE schedule_id = :id"
                 " AND status = 'skipped'"),
            {"id": schedule["id"]},
        ).scalars().all()  # fmt: skip
    assert "workflow_disabled" in reasons

    # Enabled again it fires again; disabling the schedule stops it too.
    assert pipeline.api.patch("/v1/workflows/wf-e2e", json={"enabled": True}).status_code == 200
    wait_for(lambda: len(pipeline.calls_for("wf-e2e")) > quiet_from, 30, "fires to resume")
    disabled = pipeline.api.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    quiet_from = settle(pipeline, "wf-e2e")
    time.sleep(4)
    assert len(pipeline.calls_for("wf-e2e")) == quiet_from

    # Deleting the workflow removes its schedule (and its history).
    assert pipeline.api.delete("/v1/workflows/wf-e2e").status_code == 204
    assert pipeline.api.get(f"/v1/schedules/{schedule['id']}").status_code == 404
    with pipeline.database.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM schedule_runs WHERE schedule_id = :id"),
            {"id": schedule["id"]},
        ).scalar_one()
    assert left == 0
    # Every call the stand-in saw was a distinct run: no occurrence executed twice.
    calls = pipeline.calls_for("wf-e2e")
    assert len({c["executionId"] for c in calls}) == len(calls)
    assert len({c["input"]["triggerTime"] for c in calls}) == len(calls)


def check_contract(calls: list[dict[str, Any]], schedule_id: str) -> None:
    times = sorted(parse_instant(c["input"]["triggerTime"]) for c in calls)
    for call in calls:
        assert call["idempotencyKey"] == call["executionId"]
        assert call["serviceKeyPresent"] is True
        assert call["input"]["triggerType"] == "schedule"
        assert call["input"]["scheduleId"] == schedule_id
    # Each fire is an occurrence of the expression, and consecutive ones are 2 s apart: none
    # was lost and none was sent twice.
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in times)
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(seconds=2)] * (
        len(times) - 1
    )
    assert len({c["executionId"] for c in calls}) == len(calls)


def check_database(pipeline: Pipeline, schedule_id: str) -> None:
    calls = {c["executionId"]: c for c in pipeline.standin.calls()}

    def all_recorded() -> bool:
        with pipeline.database.connect() as connection:
            done = connection.execute(
                text("SELECT count(*) FROM schedule_runs WHERE schedule_id = :id"
                     " AND status = 'succeeded'"),
                {"id": schedule_id},
            ).scalar_one()  # fmt: skip
        return int(done) >= len(calls)

    wait_for(all_recorded, 30, "the runs to be recorded")
    with pipeline.database.connect() as connection:
        runs = connection.execute(
            text("SELECT id, scheduled_for, status, attempts, http_status FROM schedule_runs"
                 " WHERE schedule_id = :id AND status = 'succeeded'"),
            {"id": schedule_id},
        ).all()  # fmt: skip
        row = connection.execute(
            text("SELECT run_count, last_status, last_run_at, next_run_at FROM workflow_schedules"
                 " WHERE id = :id"),
            {"id": schedule_id},
        ).one()  # fmt: skip
    by_id = {run.id: run for run in runs}
    for execution_id, call in calls.items():
        run = by_id[execution_id]
        assert _utc(run.scheduled_for) == parse_instant(call["input"]["triggerTime"])
        assert run.http_status == 200
        assert run.attempts == 1
    assert int(row.run_count) >= len(runs)
    assert row.last_status == "success"
    latest = max(_utc(run.scheduled_for) for run in runs)
    assert _utc(row.last_run_at) >= latest
    assert _utc(row.next_run_at) > latest


def settle(pipeline: Pipeline, workflow_id: str) -> int:
    """Wait until no new call arrived for 3 s (in-flight ones finished); return the count."""
    count = len(pipeline.calls_for(workflow_id))
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 3:
        time.sleep(0.5)
        now = len(pipeline.calls_for(workflow_id))
        if now != count:
            count, quiet_since = now, time.monotonic()
    return count


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands back text through a plain engine
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
