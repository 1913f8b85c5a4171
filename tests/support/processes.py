"""Run ``keeperhub-scheduler`` commands as real processes (to SIGKILL and SIGTERM them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from keeperhub_scheduler.transport.sqs import QueueEndpoint


def environment(
    database_url: str,
    queue: QueueEndpoint | None = None,
    keeperhub_url: str = "http://127.0.0.1:9",
    **extra: str,
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "KEEPERHUB_URL": keeperhub_url,
        "SCHEDULER_SERVICE_API_KEY": "service-key",
        "SCHEDULER_SIGNING_KEY": "signing-key",
        "SCHEDULER_HEALTH_PORT": "0",
        "SCHEDULER_LOG_LEVEL": "INFO",
        "AWS_REGION": "us-east-1",
    }
    if queue is not None:
        env |= {
            "SQS_QUEUE_URL": queue.queue_url,
            "SCHEDULER_DLQ_URL": queue.dlq_url or "",
            "AWS_ENDPOINT_URL": queue.endpoint_url or "",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
    return env | extra


def spawn(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``keeperhub-scheduler <arguments>``, its output appended to ``log``."""
    output = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "keeperhub_scheduler.cli", *arguments],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def run(
    arguments: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keeperhub_scheduler.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kill(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> int:
    process.send_signal(sig)
    return process.wait(timeout=60)
