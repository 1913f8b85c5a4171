"""A LocalStack of this test's own, on its own port, that the test may stop and start.

The shared LocalStack on 4566 serves every other test at the same time, so an outage test must
never touch it. This one runs from the same virtual environment ``scripts/localstack.sh``
installs, with its own state directory. LocalStack keeps no state across a restart, so the test
creates its queues again after starting it (as AWS would still have them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from keeperhub_scheduler.transport.sqs import QueueEndpoint
from tests.support.standin import free_port

VENV_PYTHON = (
    Path(__file__).resolve().parents[2] / ".cache" / "localstack" / "venv" / "bin" / "python"
)


class PrivateLocalStack:
    def __init__(self, workdir: Path) -> None:
        if not VENV_PYTHON.exists():
            raise RuntimeError(
                f"no LocalStack venv at {VENV_PYTHON}: run scripts/localstack.sh install"
            )
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "localstack.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "SERVICES": "sqs",
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "LOCALSTACK_VOLUME_DIR": str(self.workdir / "data"),
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_PYTHON), "-m", "localstack.runtime.main"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"LocalStack exited; see {self.log_path}")
            time.sleep(0.25)
        raise RuntimeError(f"LocalStack did not answer within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and then never answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.endpoint_url}/_localstack/health", timeout=2
            ) as answer:
                services = json.load(answer).get("services", {})
        except OSError:
            return False
        return services.get("sqs") in ("available", "running")

    def queue(self, name: str) -> QueueEndpoint:
        account = f"{self.endpoint_url}/000000000000"
        return QueueEndpoint(
            queue_url=f"{account}/{name}",
            dlq_url=f"{account}/{name}-dlq",
            region="us-east-1",
            endpoint_url=self.endpoint_url,
            access_key_id="test",
            secret_access_key="test",
        )
