"""The aiohttp-backed httpx transport over real HTTP: httpx's responses and exceptions for
whatever the server does, a bounded body, no redirect followed, and pooled connections."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from keeperhub_scheduler.keeperhub.pool import AiohttpTransport
from tests.support.standin import free_port


async def gzipped_error(_request: web.Request) -> web.Response:
    body = gzip.compress(json.dumps({"error": "nope"}).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return web.Response(status=422, body=body, headers=headers)


async def huge(_request: web.Request) -> web.Response:
    return web.Response(status=500, body=b"x" * (1024 * 1024))


async def hang_up(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b"partial")
    assert request.transport is not None
    request.transport.close()  # the server goes away mid-answer
    return response


async def redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("http://169.254.169.254/elsewhere")


async def echo(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response(
        {"body": await request.text(), "key": request.headers.get("X-Service-Key"),
         "client_port": peer[1] if peer else None}
    )  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes([
        web.post("/gzip", gzipped_error), web.post("/huge", huge), web.post("/hang-up", hang_up),
        web.post("/redirect", redirect), web.post("/echo", echo),
    ])  # fmt: skip
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = AiohttpTransport(max_connections=4, max_body_bytes=4096)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        yield client


async def test_the_request_arrives_whole_and_connections_are_reused(
    server: str, client: httpx.AsyncClient
) -> None:
    answers = [
        await client.post(f"{server}/echo", content=b'{"a": 1}', headers={"X-Service-Key": "k"})
        for _ in range(3)
    ]

    assert [answer.json()["body"] for answer in answers] == ['{"a": 1}'] * 3
    assert {answer.json()["key"] for answer in answers} == {"k"}
    assert len({answer.json()["client_port"] for answer in answers}) == 1  # one kept connection


async def test_a_compressed_body_reads_as_plain_json(
    server: str, client: httpx.AsyncClient
) -> None:
    answer = await client.post(f"{server}/gzip")

    assert (answer.status_code, answer.json()) == (422, {"error": "nope"})


async def test_a_huge_body_is_cut_at_the_limit(server: str, client: httpx.AsyncClient) -> None:
    answer = await client.post(f"{server}/huge")

    assert (answer.status_code, len(answer.content)) == (500, 4096)


async def test_a_server_hanging_up_mid_answer_is_an_httpx_transport_error(
    server: str, client: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.TransportError):
        await client.post(f"{server}/hang-up")


async def test_a_redirect_is_returned_not_followed(server: str, client: httpx.AsyncClient) -> None:
    answer = await client.post(f"{server}/redirect")

    assert answer.status_code == 302
    assert answer.headers["Location"] == "http://169.254.169.254/elsewhere"


async def test_a_refused_connection_is_an_httpx_connect_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{free_port()}/echo")
