"""The KeeperHub client against the stand-in over real HTTP: the contract it sends, and how each
answer is classified (succeeded, retry, failed) with its error and Retry-After."""

from __future__ import annotations

import email.utils
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from keeperhub_scheduler.dev.standin import Scripted, StandInState
from keeperhub_scheduler.keeperhub.client import KeeperHubClient, request_body
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.transport.messages import format_instant
from tests.support.standin import free_port, running_standin

WHEN = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
REQUEST = RunRef(
    run_id="01a2b3c4-0000-7000-8000-000000000000",
    workflow_id="wf_1",
    schedule_id="sched_1",
    scheduled_for=WHEN,
)


@pytest.fixture
async def standin() -> AsyncIterator[tuple[str, StandInState]]:
    async with running_standin() as served:
        yield served


@pytest.fixture
async def client(standin: tuple[str, StandInState]) -> AsyncIterator[KeeperHubClient]:
    keeperhub = KeeperHubClient(standin[0], "service-key", read_timeout=1.0)
    yield keeperhub
    await keeperhub.close()


async def test_the_call_carries_the_contract(
    client: KeeperHubClient, standin: tuple[str, StandInState]
) -> None:
    result = await client.execute(REQUEST)

    assert (result.outcome, result.status, result.error) == ("succeeded", 200, None)
    [call] = standin[1].calls
    assert call == call | {
        "executionId": REQUEST.run_id,
        "idempotencyKey": REQUEST.run_id,
        "workflowId": "wf_1",
        "serviceKeyPresent": True,
        "input": {
            "triggerType": "schedule",
            "scheduleId": "sched_1",
            "triggerTime": "2026-03-29T01:30:00.000Z",
        },
    }


@pytest.mark.parametrize(
    "run",
    [
        REQUEST,
        replace(
            REQUEST, schedule_id='s"q\\uo\u00e9te\n', scheduled_for=WHEN + timedelta(microseconds=7)
        ),
        replace(
            REQUEST,
            run_id="r\u2028\x00",
            scheduled_for=datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        ),
    ],
)
def test_the_body_is_what_json_would_write(run: RunRef) -> None:
    payload = {
        "executionId": run.run_id,
        "input": {
            "triggerType": "schedule",
            "scheduleId": run.schedule_id,
            "triggerTime": format_instant(run.scheduled_for),
        },
    }
    assert request_body(run) == json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "succeeded"),
        (201, "succeeded"),
        (202, "succeeded"),
        (302, "failed"),  # never followed: a redirect could carry the service key elsewhere
        (400, "failed"),
        (401, "failed"),
        (403, "failed"),
        (404, "failed"),
        (409, "failed"),
        (422, "failed"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
    ],
)
async def test_each_answer_is_classified(
    status: int, outcome: str, client: KeeperHubClient, standin: tuple[str, StandInState]
) -> None:
    standin[1].script.append(Scripted(status, body=None if status < 300 else {"error": "nope"}))

    result = await client.execute(REQUEST)

    assert (result.outcome, result.status) == (outcome, status)
    assert result.error == (None if status < 300 else f"HTTP {status}: nope")


async def test_a_body_without_an_error_field_is_recorded_as_text(
    client: KeeperHubClient, standin: tuple[str, StandInState]
) -> None:
    standin[1].script.extend([Scripted(500, body={"message": "x"}), Scripted(500, body="busy")])

    assert (await client.execute(REQUEST)).error == 'HTTP 500: {"message":"x"}'
    assert (await client.execute(REQUEST)).error == "HTTP 500: busy"


async def test_retry_after_in_seconds_or_as_an_http_date(
    client: KeeperHubClient, standin: tuple[str, StandInState]
) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    standin[1].script.extend(
        [Scripted(429, retry_after="7"), Scripted(503, retry_after=later), Scripted(503)]
    )

    assert (await client.execute(REQUEST)).retry_after == 7.0
    from_date = (await client.execute(REQUEST)).retry_after
    assert from_date is not None
    assert 100 < from_date <= 120
    assert (await client.execute(REQUEST)).retry_after is None


async def test_a_read_timeout_is_retryable(
    client: KeeperHubClient, standin: tuple[str, StandInState]
) -> None:
    standin[1].script.append(Scripted(200, delay=3))

    result = await client.execute(REQUEST)

    assert (result.outcome, result.status, result.error) == ("retry", None, "timeout: ReadTimeout")


async def test_a_refused_connection_is_retryable() -> None:
    keeperhub = KeeperHubClient(f"http://127.0.0.1:{free_port()}", "service-key")
    try:
        result = await keeperhub.execute(REQUEST)
    finally:
        await keeperhub.close()

    assert (result.outcome, result.status) == ("retry", None)
    assert result.error is not None
    assert result.error.startswith("network error")


@pytest.mark.parametrize(
    "workflow_id", ["../../admin", "a/b", "a%2Fb", "a?b=c", "a#b", "", "x" * 129, "wf 1", "ü"]
)
async def test_a_workflow_id_that_could_change_the_path_is_refused_without_a_call(
    workflow_id: str, client: KeeperHubClient, standin: tuple[str, StandInState]
) -> None:
    request = RunRef(
        run_id=REQUEST.run_id, workflow_id=workflow_id, schedule_id="sched_1", scheduled_for=WHEN
    )

    result = await client.execute(request)

    assert (result.outcome, result.status) == ("failed", None)
    assert result.error is not None
    assert result.error.startswith("invalid workflow id")
    assert standin[1].calls == []


def test_a_valid_workflow_id_is_the_last_path_segment_but_one() -> None:
    keeperhub = KeeperHubClient("https://keeperhub.example/", None)
    assert (
        str(keeperhub.url_for("Ab_9-x")) == "https://keeperhub.example/api/workflow/Ab_9-x/execute"
    )


async def test_a_cookie_one_answer_sets_is_not_sent_with_the_next_call() -> None:
    cookies_seen: list[str | None] = []

    async def sets_a_cookie(request: web.Request) -> web.Response:
        cookies_seen.append(request.headers.get("Cookie"))
        return web.json_response({}, headers={"Set-Cookie": "session=abc; Path=/"})

    app = web.Application()
    app.add_routes([web.post("/api/workflow/{workflow_id}/execute", sets_a_cookie)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    keeperhub = KeeperHubClient(f"http://127.0.0.1:{port}", "service-key")
    try:
        results = [await keeperhub.execute(REQUEST) for _ in range(2)]
    finally:
        await keeperhub.close()
        await runner.cleanup()

    assert [result.outcome for result in results] == ["succeeded", "succeeded"]
    assert cookies_seen == [None, None]


async def test_a_proxy_in_the_environment_is_not_used(
    client: KeeperHubClient, standin: tuple[str, StandInState], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens: a proxied call would fail
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    result = await client.execute(REQUEST)

    assert result.outcome == "succeeded"
    assert len(standin[1].calls) == 1


async def test_a_redirect_is_a_final_failure_and_a_hang_up_a_retry() -> None:
    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/elsewhere")

    async def hang_up(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Length": "100"})
        await response.prepare(request)
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.add_routes([
        web.post("/api/workflow/moved/execute", redirect),
        web.post("/api/workflow/gone/execute", hang_up),
    ])  # fmt: skip
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    keeperhub = KeeperHubClient(f"http://127.0.0.1:{port}", "service-key")
    try:
        moved = await keeperhub.execute(replace(REQUEST, workflow_id="moved"))
        gone = await keeperhub.execute(replace(REQUEST, workflow_id="gone"))
    finally:
        await keeperhub.close()
        await runner.cleanup()

    assert (moved.outcome, moved.status) == ("failed", 302)
    assert (gone.outcome, gone.status) == ("retry", None)
    assert gone.error is not None
    assert gone.error.startswith("network error")
