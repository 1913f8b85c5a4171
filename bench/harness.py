"""Real parts for benchmarks and fault runs: a LocalStack of their own, a throwaway database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg

from keeperhub_scheduler.db.migrate import upgrade
from tests.support import postgres
from tests.support.standin import free_port

ROOT = Path(__file__).resolve().parent.parent


def clean_up_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a stopped benchmark still runs its ``finally`` blocks:
    its processes, its LocalStack and its database go with it instead of living on as orphans."""

    def stop(signum: int, frame: object) -> None:
        # Once: a second SIGTERM (uv run passes its own on) must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


LOCALSTACK_PYTHON = ROOT / ".cache" / "localstack" / "venv" / "bin" / "python"


class LocalStack:
    """A LocalStack (SQS only) on its own port, so a run may freeze it without touching others.

    ``freeze`` (SIGSTOP) is an outage that keeps the queue's messages, as a real SQS outage
    would: a restart of LocalStack would lose them, which SQS never does.
    """

    def __init__(self, port: int) -> None:
        if not LOCALSTACK_PYTHON.exists():
            subprocess.run([str(ROOT / "scripts" / "localstack.sh"), "install"], check=True)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.volume = tempfile.mkdtemp(prefix="khs-localstack-")
        env = os.environ | {
            "SERVICES": "sqs",
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "LOCALSTACK_VOLUME_DIR": self.volume,
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
        }
        self.log = Path(self.volume) / "localstack.log"
        self.process = subprocess.Popen(
            [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy(90)

    def _wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_localstack/health", timeout=2) as answer:
                    if json.load(answer)["services"].get("sqs") in ("available", "running"):
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"LocalStack on port {self.port} did not start; see {self.log}")

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Database:
    """A migrated throwaway PostgreSQL database, dropped by ``drop``."""

    def __init__(self, prefix: str) -> None:
        self.name = postgres.new_name(prefix)
        self.url = postgres.create_database(self.name)
        upgrade(self.url)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True)

    def drop(self) -> None:
        postgres.drop_database(self.name)


class StandIn:
    """The stand-in as its own process, without a call log (it would cost the stand-in CPU)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keeperhub_scheduler.cli", "standin", "--port", str(self.port)],
            env={"PATH": "/usr/bin:/bin", "SCHEDULER_SERVICE_API_KEY": "service-key"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.counts()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("stand-in did not start")

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/_counts", timeout=60) as answer:
            counts: dict[str, int] = json.load(answer)
        return counts

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/_control/reset", data=b"{}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
