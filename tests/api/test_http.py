"""HTTP itself: the body-size limit on every route, OPTIONS and 405 with every method of a path,
the JSON 500 with a request id for any error nobody foresaw, and what the OpenAPI document states
(the rules a client can check before it sends)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import jsonschema
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
        ("/v1/schedules", "GET, HEAD, OPTIONS, POST"),
        ("/v1/schedules/s", "DELETE, GET, HEAD, OPTIONS, PATCH"),
        ("/v1/workflows/w", "DELETE, GET, HEAD, OPTIONS, PATCH"),
        ("/v1/workflows/w/schedule", "OPTIONS, PUT"),
        ("/v1/runs", "GET, HEAD, OPTIONS"),
        ("/healthz", "GET, HEAD, OPTIONS"),
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


@pytest.mark.parametrize("path", ["/v1/schedules", "/v1/runs", "/healthz", "/ui/login"])
async def test_head_answers_as_get_does_without_the_body(
    client: httpx.AsyncClient, path: str
) -> None:
    got, head = await client.get(path), await client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert head.content == b""
    anonymous = await client.head("/v1/schedules", headers={"Authorization": ""})
    assert anonymous.status_code == 401


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


async def test_length_errors_count_characters(client: httpx.AsyncClient) -> None:
    long_name = await client.post("/v1/workflows", json={"id": "w", "name": "n" * 201})
    assert long_name.json()["detail"] == [
        {"field": "name", "message": "String should have at most 200 characters"}
    ]
    empty = await client.post("/v1/workflows", json={"id": "w", "name": ""})
    assert empty.json()["detail"] == [
        {"field": "name", "message": "String should have at least 1 character"}
    ]
    note = await client.post("/v1/schedules/s/pause", json={"note": "x" * 1001})
    assert note.json()["detail"][0]["message"] == "String should have at most 1000 characters"


def component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema of a request body, with its references resolvable."""
    return {"$defs": schema["components"]["schemas"]} | {
        "$ref": f"#/$defs/{name}"
    }  # fmt: skip


# (body, accepted): the timing rule of create and preview, and the date bounds.
TIMINGS: list[tuple[dict[str, Any], bool]] = [
    ({"cron_expression": "@daily"}, True),
    ({"interval_seconds": 60}, True),
    ({"interval_seconds": 60, "anchor_at": "2026-01-01T00:00:00Z"}, True),
    ({"cron_expression": "@daily", "interval_seconds": None}, True),
    ({"cron_expression": None, "interval_seconds": 60}, True),
    ({"interval_seconds": 60.0}, True),  # an integer, to JSON Schema
    ({}, False),
    ({"cron_expression": None}, False),
    ({"cron_expression": "@daily", "interval_seconds": 60}, False),
    ({"cron_expression": "@daily", "anchor_at": "2026-01-01T00:00:00Z"}, False),
    ({"interval_seconds": 60, "anchor_at": "1969-12-31T23:00:00Z"}, False),
    ({"interval_seconds": 60, "anchor_at": "1970-01-01T00:00:00+14:00"}, True),
    ({"interval_seconds": 60, "anchor_at": "8999-12-31T23:59:59-14:00"}, True),
    ({"interval_seconds": 60, "anchor_at": "9000-01-01T00:00:00Z"}, False),
    ({"interval_seconds": 60, "anchor_at": "0001-01-01T00:00:00+14:00"}, False),
    ({"interval_seconds": 60.5}, False),
    ({"interval_seconds": "60"}, False),
]


@pytest.mark.parametrize(("body", "accepted"), TIMINGS)
async def test_the_schema_states_the_timing_rule_and_date_bounds_as_the_server_applies_them(
    client: httpx.AsyncClient, body: dict[str, Any], accepted: bool
) -> None:
    schema = (await client.get("/openapi.json")).json()
    validator = jsonschema.Draft202012Validator(
        component(schema, "PreviewRequest"), format_checker=jsonschema.FormatChecker()
    )
    assert validator.is_valid(body) == accepted, list(validator.iter_errors(body))
    answer = await client.post("/v1/preview", json=body)
    assert (answer.status_code == 200) == accepted, answer.text
    create = component(schema, "ScheduleCreate")
    assert jsonschema.Draft202012Validator(create).is_valid(body | {"workflow_id": "w"}) == accepted


@pytest.mark.parametrize(
    ("cursor", "valid"),
    [
        ("1767225600000000.wf_nightly", True),
        ("-9999999999999999999.x", True),
        ("0.x", True),
        ("WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwieCJd", False),
        ("1767225600000000", False),
        ("1767225600000000.", False),
        ("1.5.x", False),
        ("99999999999999999999.x", False),
    ],
)
async def test_the_schema_states_the_cursor_format(
    client: httpx.AsyncClient, cursor: str, valid: bool
) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/v1/runs", "/v1/schedules"):
        [parameter] = [
            p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "cursor"
        ]
        validator = jsonschema.Draft202012Validator(parameter["schema"])
        assert validator.is_valid(cursor) == valid
        answer = await client.get(path, params={"cursor": cursor})
        assert answer.status_code == (200 if valid else 422), answer.text
