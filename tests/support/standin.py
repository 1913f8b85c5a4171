"""The KeeperHub stand-in for tests: in this event loop, or as a separate process."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from keeperhub_scheduler.dev.standin import StandInState, standin_app
from keeperhub_scheduler.processes import EmbeddedServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def running_standin(
    service_key: str | None = "service-key",
) -> AsyncIterator[tuple[str, StandInState]]:
    """A stand-in served from this event loop; yields its base URL and its state."""
    import uvicorn

    state = StandInState(service_key=service_key)
    port = free_port()
    config = uvicorn.Config(standin_app(state), host="127.0.0.1", port=port, log_config=None)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        await task


class StandInProcess:
    """The stand-in as its own process (``keeperhub-scheduler standin``), driven over HTTP."""

    def __init__(self, log_path: Path, service_key: str = "service-key") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {"SCHEDULER_SERVICE_API_KEY": service_key, "PATH": "/usr/bin:/bin"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keeperhub_scheduler.cli", "standin", "--port", str(self.port),
             "--log", str(log_path)],
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.get("/_counts")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("stand-in did not start")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as answer:
            return json.load(answer)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
