"""The management API as users run it: ``keeperhub-scheduler api``, a process of its own."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.management.world import TOKEN
from tests.support import processes
from tests.support.standin import free_port


@dataclass(frozen=True)
class ApiProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def memory_mib(self) -> tuple[float, float]:
        """(RSS now, peak RSS since start) of the process, in MiB, from /proc."""
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@contextmanager
def serving_api(database_url: str, log: Path, **env: str) -> Iterator[ApiProcess]:
    """``keeperhub-scheduler api`` on a free port, with ``TOKEN``; stopped with SIGTERM after."""
    port = free_port()
    environment = processes.environment(database_url) | {"SCHEDULER_API_TOKENS": TOKEN} | env
    process = processes.spawn(["api", "--port", str(port)], environment, log)
    api = ApiProcess(f"http://127.0.0.1:{port}", port, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{api.url}/healthz", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
        yield api
    finally:
        assert processes.kill(process, signal.SIGTERM) == 0
