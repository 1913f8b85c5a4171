"""The KeeperHub client's HTTP over a real server: the request arrives whole on a kept
connection, a compressed body reads as plain JSON, the body is cut at the cap, a hang-up or a
refused connection is a retry and a redirect is a final failure, never followed."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from keeperhub_scheduler.keeperhub.client import KeeperHubClient
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


async def in_pieces(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=503)  # chunked: the end comes after the last piece
    await response.prepare(request)
    for piece in (b'{"error": ', b'"busy, ', b'try later"}'):
        await response.write(piece)
        await asyncio.sleep(0.02)
    await response.write_eof()
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
        web.post("/in-pieces", in_pieces),
    ])  # fmt: skip
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[KeeperHubClient]:
    keeperhub = KeeperHubClient(
        "http://unused.invalid", "k", max_connections=4, max_body_bytes=4096
    )
    yield keeperhub
    await keeperhub.close()


async def post(client: KeeperHubClient, url: str, data: bytes = b"") -> tuple[int, bytes, str]:
    answer = await client.post(URL(url), data, {"X-Service-Key": "k"})
    return answer.status, answer.body, answer.headers.get("Location", "")


async def test_the_request_arrives_whole_and_connections_are_reused(
    server: str, client: KeeperHubClient
) -> None:
    answers = [json.loads((await post(client, f"{server}/echo", b'{"a": 1}'))[1]) for _ in range(3)]

    assert [answer["body"] for answer in answers] == ['{"a": 1}'] * 3
    assert {answer["key"] for answer in answers} == {"k"}
    assert len({answer["client_port"] for answer in answers}) == 1  # one kept connection


async def test_a_compressed_body_reads_as_plain_json(server: str, client: KeeperHubClient) -> None:
    status, body, _ = await post(client, f"{server}/gzip")

    assert (status, json.loads(body)) == (422, {"error": "nope"})


async def test_a_huge_body_is_cut_at_the_limit(server: str, client: KeeperHubClient) -> None:
    status, body, _ = await post(client, f"{server}/huge")

    assert (status, len(body)) == (500, 4096)


async def test_a_body_sent_in_pieces_is_read_whole(server: str, client: KeeperHubClient) -> None:
    status, body, _ = await post(client, f"{server}/in-pieces")

    assert (status, json.loads(body)) == (503, {"error": "busy, try later"})


async def test_a_server_hanging_up_mid_answer_is_a_client_error(
    server: str, client: KeeperHubClient
) -> None:
    with pytest.raises(aiohttp.ClientError):
        await post(client, f"{server}/hang-up")


async def test_a_redirect_is_returned_not_followed(server: str, client: KeeperHubClient) -> None:
    status, _, location = await post(client, f"{server}/redirect")

    assert (status, location) == (302, "http://169.254.169.254/elsewhere")


async def test_a_refused_connection_is_a_connector_error(client: KeeperHubClient) -> None:
    with pytest.raises(aiohttp.ClientConnectorError):
        await post(client, f"http://127.0.0.1:{free_port()}/echo")
