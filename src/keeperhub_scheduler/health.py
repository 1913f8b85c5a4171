"""The small HTTP port of the dispatcher and executor: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` answers 200 while the main loop has turned recently (a wedged loop fails the liveness
probe and gets restarted); ``/readyz`` answers 200 when the database and the queue answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keeperhub_scheduler import metrics

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


class Heartbeat:
    """The main loop calls ``beat()`` each turn; liveness is "beat within ``max_silence``"."""

    def __init__(self, max_silence: float) -> None:
        self.max_silence = max_silence
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last <= self.max_silence


def health_app(heartbeat: Heartbeat, readiness: ReadinessCheck) -> Starlette:
    async def healthz(_: Request) -> Response:
        status = 200 if heartbeat.alive else 503
        return JSONResponse({"alive": heartbeat.alive}, status_code=status)

    async def readyz(_: Request) -> Response:
        problems = await readiness()
        return JSONResponse(
            {"ready": not problems, "problems": problems}, status_code=503 if problems else 200
        )

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside our own event loop: signals stay ours (we drain on SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: Starlette, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set (port 0: do not serve at all)."""
    if port == 0:
        await stop.wait()
        return
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
