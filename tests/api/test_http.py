"""HTTP itself: the body-size limit on every route, OPTIONS and 405 with every method of a path,
and the JSON 500 with a request id for any error nobody foresaw."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keeperhub_scheduler import management
from keeperhub_scheduler.api import create_app
from tests.management.world import TOKEN, settings_for

LIMIT = 2048


@pytest.fixture
async def small_limit(
    engine: AsyncEngine, database_url: str
) -> Any:  # an httpx.AsyncClient on an API that reads at most LIMIT bytes of a body
    app = create_app(settings_for(database_url, scheduler_api_max_body_bytes=LIMIT), engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://scheduler.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def padded(body: str, size: int) -> bytes:
    """``body`` as JSON text of exactly ``size`` bytes (whitespace after it is still JSON)."""
    return body.encode().ljust(size)


async def test_every_route_refuses_a_body_over_the_limit(small_limit: httpx.AsyncClient) -> None:
    schema = (await small_limit.get("/openapi.json")).json()
    routes = [
        (method.upper(), path.replace("{schedule_id}", "s").replace("{run_id}", "r")
         .replace("{workflow_id}", "w"))
        for path, methods in schema["paths"].items()
        for method in methods
    ]  # fmt: skip
    assert len(routes) == 21  # /v1's nineteen, /healthz and /readyz
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            answer = await small_limit.request(
                method, path, content=padded("{}", LIMIT + 1), headers=headers
            )
            expected = 401 if headers and path.startswith("/v1") else 413
            assert answer.status_code == expected, (method, path, headers, answer.text)
    too_big = await small_limit.post("/v1/preview", content=padded("{}", LIMIT + 1))
    assert too_big.json() == {"detail": f"the request body is larger than {LIMIT} bytes"}
    assert too_big.headers["Connection"] == "close"


async def test_a_body_at_the_limit_is_read_whole(small_limit: httpx.AsyncClient) -> None:
    body = padded('{"cron_expression": "@hourly", "count": 2}', LIMIT)
    answer = await small_limit.post(
        "/v1/preview", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["fire_times"]) == 2


async def test_a_streamed_body_is_cut_at_the_limit(small_limit: httpx.AsyncClient) -> None:
    sent = 0

    async def stream() -> Any:  # no Content-Length: chunked, counted as it comes
        nonlocal sent
        for _ in range(1000):
            sent += 512
            yield b" " * 512

    answer = await small_limit.post("/v1/preview", content=stream())
    assert answer.status_code == 413
    assert sent < 10 * LIMIT  # the rest was never asked for


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/schedules", "GET, OPTIONS, POST"),
        ("/v1/schedules/s", "DELETE, GET, OPTIONS, PATCH"),
        ("/v1/workflows/w", "DELETE, GET, OPTIONS, PATCH"),
        ("/v1/workflows/w/schedule", "OPTIONS, PUT"),
        ("/v1/runs", "GET, OPTIONS"),
        ("/healthz", "GET, OPTIONS"),
    ],
)
async def test_options_and_405_list_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, methods: str
) -> None:
    options = await client.options(path)
    assert options.status_code == 204
    assert options.headers["Allow"] == methods
    unused = next(m for m in ("PUT", "POST", "DELETE") if m not in methods)
    refused = await client.request(unused, path)
    assert refused.status_code == 405
    assert refused.headers["Allow"] == methods
    assert refused.json() == {"detail": "Method Not Allowed"}
    assert (await client.options("/v1/nothing-here")).status_code == 404


async def test_options_under_v1_needs_the_token_too(client: httpx.AsyncClient) -> None:
    anonymous = await client.options("/v1/schedules", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_an_unforeseen_error_is_a_json_500_with_a_request_id_that_is_logged(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr(management, "list_runs", broken)
    with caplog.at_level(logging.ERROR, logger="keeperhub_scheduler.api"):
        answer = await client.get("/v1/runs")
    assert answer.status_code == 500
    request_id = answer.headers["X-Request-ID"]
    assert answer.json() == {
        "detail": f"internal error (request id {request_id})",
        "request_id": request_id,
    }
    [record] = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert record.exc_info is not None
    assert "a bug nobody foresaw" in str(record.exc_info[1])
    assert (record.method, record.path) == ("GET", "/v1/runs")  # type: ignore[attr-defined]
    assert (await client.get("/v1/status")).status_code == 200  # and it keeps serving
