"""What a request must pass before the application sees it: the bearer token, then the body's size.

Both are checked here, in front of FastAPI, because FastAPI reads and parses a request's body
before it runs the route's dependencies: a 200 MB POST without a token used to be read, parsed
and held (peak RSS 117 -> 717 MB) before its 401. Here a ``/v1`` request without a known token is
answered 401 from its headers alone, and no body is read past ``max_body_bytes``: one announced
larger (Content-Length) is answered 413 at once, one that streams past it (chunked) as soon as it
does. An answer given before the whole body was read closes the connection, so the rest of that
body is never read either.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keeperhub_scheduler.api.auth import refusal

PROTECTED_PREFIX = "/v1"


class _Disconnected(Exception):
    pass


class RequestGuard:
    """ASGI middleware: the token for every ``/v1`` path, a body-size limit for every path."""

    def __init__(self, app: ASGIApp, *, tokens: tuple[str, ...], max_body_bytes: int) -> None:
        self.app = app
        self.tokens = tuple(token.encode() for token in tokens)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # names are lower-case in ASGI
        path: str = scope["path"]
        if path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/"):
            refused = refusal(headers.get(b"authorization"), self.tokens)
            if refused is not None:
                detail, challenge = refused
                answer = {"WWW-Authenticate": challenge} | _closing(headers)
                await JSONResponse({"detail": detail}, 401, answer)(scope, receive, send)
                return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except _Disconnected:
            return
        if body is None:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_body_bytes} bytes"
        await JSONResponse({"detail": detail}, 413, {"Connection": "close"})(scope, receive, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return bytes(body)


def _closing(headers: dict[bytes, bytes]) -> dict[str, str]:
    """``Connection: close`` for an answer that leaves a body unread."""
    has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
    return {"Connection": "close"} if has_body else {}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the application the body already read, then passes on the real
    one's messages (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
