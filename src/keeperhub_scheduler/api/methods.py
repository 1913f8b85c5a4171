"""Which methods a path supports: ``OPTIONS`` answers them, and a 405 lists all of them.

Each method of a path is a route of its own, so left to itself Starlette answers ``OPTIONS`` with
a 405 and puts only the first matching route's methods in ``Allow`` (``GET`` for
``/v1/schedules/{id}``, which also takes PATCH and DELETE). RFC 9110 asks a 405 to list every
method of the resource; here both answers do. It also asks that wherever GET is, HEAD is too
(FastAPI's GET routes refuse it): HEAD is answered as GET is, without the body.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


class AllowedMethods:
    """ASGI middleware over ``router``'s routes (asked at each request: routes may come late)."""

    def __init__(self, app: ASGIApp, *, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._routed(scope, scope["method"]):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD" and self._takes(scope, "HEAD"):
            await self.app({**scope, "method": "GET"}, receive, _headers_only(send))
            return
        methods = {method for method in METHODS if self._takes(scope, method)}
        if not methods:  # no such path: the router's 404
            await self.app(scope, receive, send)
            return
        allow = {"Allow": ", ".join(sorted(methods | {"OPTIONS"}))}
        if scope["method"] == "OPTIONS":
            await Response(status_code=204, headers=allow)(scope, receive, send)
        else:
            await JSONResponse({"detail": "Method Not Allowed"}, 405, allow)(scope, receive, send)

    def _takes(self, scope: Scope, method: str) -> bool:
        return self._routed(scope, "GET" if method == "HEAD" else method)

    def _routed(self, scope: Scope, method: str) -> bool:
        probe: Scope = {**scope, "method": method}
        return any(route.matches(probe)[0] is Match.FULL for route in self.router.routes)


def _headers_only(send: Send) -> Send:
    """GET's answer with its headers (Content-Length too, as RFC 9110 allows) and no body."""

    async def send_headers(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_headers
