"""An httpx transport on aiohttp's connection pool, for the executor's calls to KeeperHub.

httpcore's pool, httpx's default, scans every connection it holds at the start and at the end of
each request, and for each idle one counts the idle ones again: with the 50 connections of a busy
executor that was half of the executor's CPU. aiohttp (already here, under aiobotocore) hands out
a pooled connection in constant time. httpx stays the client: ``KeeperHubClient`` builds httpx
requests, gets httpx responses and catches httpx's exceptions, whatever carries the bytes.

A response body is read up to ``max_body_bytes`` (the rest is dropped with its connection): the
executor only keeps the start of an error body, and a huge one must not cost it memory.
"""

from __future__ import annotations

import aiohttp
import httpx

MAX_BODY_BYTES = 64 * 1024
# Set by aiohttp itself for the bytes it sends, or describing bytes it has already decoded.
NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
NOT_RETURNED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._max_connections = max_connections
        self._max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None  # opened inside the running loop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in NOT_FORWARDED
        ]
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=await request.aread(),
                allow_redirects=False,
                timeout=_timeout(request),
            ) as answer:
                body = await self._read(answer)
                returned = [
                    (name, value)
                    for name, value in answer.headers.items()
                    if name.lower() not in NOT_RETURNED
                ]
                # A ready stream: ``content=`` would make httpx add headers and read it again.
                stream = httpx.ByteStream(body)
                return httpx.Response(answer.status, headers=returned, stream=stream)
        except aiohttp.ConnectionTimeoutError as error:
            raise httpx.ConnectTimeout(str(error) or "connect timeout", request=request) from error
        except TimeoutError as error:  # aiohttp's read timeouts are TimeoutErrors too
            raise httpx.ReadTimeout(str(error) or "read timeout", request=request) from error
        except aiohttp.ClientConnectorError as error:
            raise httpx.ConnectError(str(error), request=request) from error
        except (aiohttp.ClientError, OSError) as error:
            message = str(error) or type(error).__name__
            raise httpx.ReadError(message, request=request) from error

    async def _read(self, answer: aiohttp.ClientResponse) -> bytes:
        body = bytearray()
        while len(body) < self._max_body_bytes:
            chunk = await answer.content.read(self._max_body_bytes - len(body))
            if not chunk:
                break
            body += chunk
        return bytes(body)

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        # Cookies would carry one answer's state into the next call. Proxies from the
        # environment are not looked up: KeeperHub is reached directly (and the lookup, made per
        # request, costs as much CPU as the rest of the call).
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts: ``pool`` bounds the wait for a connection, ``connect`` the
    TCP connect, ``read`` each wait for the answer's bytes."""
    timeouts = request.extensions.get("timeout", {})
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeouts.get("pool"),
        sock_connect=timeouts.get("connect"),
        sock_read=timeouts.get("read"),
    )
