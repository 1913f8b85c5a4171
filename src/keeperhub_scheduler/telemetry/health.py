"""The small HTTP port of the dispatcher and executor: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` (liveness) answers 200 while the main loop has turned recently, whether or not its
work succeeded: a wedged loop fails it and gets restarted, a loop waiting out a database or queue
outage does not (a restart would not help). ``/readyz`` (readiness) answers 200 when the database
and the queue answer.
``/metrics`` also asks the transport for its queue's depth when it has one, so a backlog or a
filling dead-letter queue shows beside the rest, without CloudWatch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keeperhub_scheduler.telemetry import metrics
from keeperhub_scheduler.transport.base import DEPTH_TIMEOUT_SECONDS, DepthProbe

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


class Heartbeat:
    """The main loop calls ``beat()`` each turn; liveness is "beat within ``max_silence``".

    ``worked()`` marks a turn that found work (a claim of due schedules, a receive that brought
    messages): the status page shows both, from the row ``telemetry.beats`` writes.
    """

    def __init__(self, max_silence: float) -> None:
        self.max_silence = max_silence
        self.last = time.monotonic()
        self.last_work: float | None = None

    def beat(self) -> None:
        self.last = time.monotonic()

    def worked(self) -> None:
        self.last = self.last_work = time.monotonic()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self.last <= self.max_silence


def health_app(
    heartbeat: Heartbeat, readiness: ReadinessCheck, depth: DepthProbe | None = None
) -> Starlette:
    async def healthz(_: Request) -> Response:
        status = 200 if heartbeat.alive else 503
        return JSONResponse({"alive": heartbeat.alive}, status_code=status)

    async def readyz(_: Request) -> Response:
        problems = await readiness()
        return JSONResponse(
            {"ready": not problems, "problems": problems}, status_code=503 if problems else 200
        )

    async def metrics_endpoint(_: Request) -> Response:
        if depth is not None:
            await read_queue_depth(depth)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )


async def read_queue_depth(depth: DepthProbe) -> None:
    """Set the queue gauges from the transport; when its queue does not answer, empty them (a
    stale count would hide a growing backlog) and count the failure. The scrape itself always
    answers. A transport without a queue (None) leaves them alone."""
    try:
        values = await asyncio.wait_for(depth(), DEPTH_TIMEOUT_SECONDS)
    except Exception:
        metrics.QUEUE_MESSAGES.clear()
        metrics.QUEUE_DEPTH_FAILURES.inc()
        return
    if values is None:
        return
    for key, count in values.items():
        queue, state = key.split("_", 1)  # "queue_in_flight" -> ("queue", "in_flight")
        metrics.QUEUE_MESSAGES.labels("main" if queue == "queue" else queue, state).set(count)
