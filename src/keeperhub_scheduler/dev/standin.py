"""A KeeperHub stand-in: the execute contract, for the demo, the tests and the benchmarks.

It implements ``POST /api/workflow/{id}/execute`` as DESIGN.md describes it, counts calls per
``executionId``, and can be told to fail, stall or answer any status, from another process:

* ``POST /_control/script``: ``{"responses": [{"status": 500}, {"status": 200}]}`` answers the
  next calls in that order (optionally per ``workflowId``); ``{"status", "delay", "retryAfter",
  "body"}`` each.
* ``POST /_control/chaos``: ``{"failRate": 0.1, "stallRate": 0.02, "stallSeconds": 40}``.
* ``POST /_control/reset``; ``GET /_calls``; ``GET /_counts``.

Not for production: it keeps every call in memory (and, with ``log_path``, in a JSONL file).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Scripted:
    status: int = 200
    delay: float = 0.0
    retry_after: str | None = None
    body: Any = None


@dataclass
class StandInState:
    service_key: str | None = None
    log_path: Path | None = None
    on_call: Callable[[dict[str, Any]], None] | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    script: deque[Scripted] = field(default_factory=deque)
    per_workflow: dict[str, deque[Scripted]] = field(default_factory=dict)
    fail_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 0.0

    def next_response(self, workflow_id: str) -> Scripted:
        queue = self.per_workflow.get(workflow_id)
        if queue:
            return queue.popleft()
        if self.script:
            return self.script.popleft()
        roll = random.random()
        if roll < self.stall_rate:
            return Scripted(200, delay=self.stall_seconds)
        if roll < self.stall_rate + self.fail_rate:
            return Scripted(500, body={"error": "chaos: injected failure"})
        return Scripted()

    def record(self, call: dict[str, Any]) -> None:
        self.calls.append(call)
        self.counts[call["executionId"]] += 1
        if self.log_path is not None:
            with self.log_path.open("a") as log:
                log.write(json.dumps(call) + "\n")
        if self.on_call is not None:
            self.on_call(call)


def standin_app(state: StandInState) -> Starlette:
    async def execute(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        if state.service_key and request.headers.get("x-service-key") != state.service_key:
            return JSONResponse({"error": "invalid service key"}, status_code=401)
        try:
            body = json.loads(await request.body())
        except ClientDisconnect:
            return Response(status_code=499)  # the caller died mid-request (the chaos run kills it)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        execution_id = body.get("executionId") if isinstance(body, dict) else None
        if not isinstance(execution_id, str):
            return JSONResponse({"error": "executionId is required"}, status_code=400)
        answer = state.next_response(workflow_id)
        state.record(
            {
                "executionId": execution_id,
                "workflowId": workflow_id,
                "idempotencyKey": request.headers.get("idempotency-key"),
                "serviceKeyPresent": "x-service-key" in request.headers,
                "input": body.get("input"),
                "receivedAt": time.time(),
                "status": answer.status,
            }
        )
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
        payload = answer.body
        if payload is None:
            ok = 200 <= answer.status < 300
            payload = (
                {"executionId": execution_id, "status": "running"}
                if ok
                else {"error": f"HTTP {answer.status}"}
            )
        return JSONResponse(payload, status_code=answer.status, headers=headers)

    async def script(request: Request) -> Response:
        spec = await request.json()
        responses = deque(
            Scripted(
                status=int(item.get("status", 200)),
                delay=float(item.get("delay", 0)),
                retry_after=item.get("retryAfter"),
                body=item.get("body"),
            )
            for item in spec.get("responses", [])
        )
        if spec.get("workflowId"):
            state.per_workflow.setdefault(spec["workflowId"], deque()).extend(responses)
        else:
            state.script.extend(responses)
        return JSONResponse({"queued": len(responses)})

    async def chaos(request: Request) -> Response:
        spec = await request.json()
        state.fail_rate = float(spec.get("failRate", 0))
        state.stall_rate = float(spec.get("stallRate", 0))
        state.stall_seconds = float(spec.get("stallSeconds", 0))
        return JSONResponse({"ok": True})

    async def reset(_: Request) -> Response:
        state.calls.clear()
        state.counts.clear()
        state.script.clear()
        state.per_workflow.clear()
        state.fail_rate = state.stall_rate = state.stall_seconds = 0.0
        return JSONResponse({"ok": True})

    async def calls(_: Request) -> Response:
        return JSONResponse(state.calls)

    async def counts(_: Request) -> Response:
        return JSONResponse(dict(state.counts))

    return Starlette(
        routes=[
            Route("/api/workflow/{workflow_id}/execute", execute, methods=["POST"]),
            Route("/_control/script", script, methods=["POST"]),
            Route("/_control/chaos", chaos, methods=["POST"]),
            Route("/_control/reset", reset, methods=["POST"]),
            Route("/_calls", calls),
            Route("/_counts", counts),
        ]
    )
