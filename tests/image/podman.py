"""podman, driven from the tests: containers of the image under test, each in a network namespace
of its own (slirp4netns), so that every one listens on the port its manifest names.

From inside a container the host's loopback is ``HOST_FROM_CONTAINER`` (slirp4netns'
``allow_host_loopback``): PostgreSQL, LocalStack and the KeeperHub stand-in stay on 127.0.0.1, and
nothing is bridged, routed or firewalled on the host. A container port is published on a free
host port of 127.0.0.1 (``Container.url`` finds it).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST_FROM_CONTAINER = "10.0.2.2"
NETWORK = "slirp4netns:allow_host_loopback=true"
LABEL = "keeperhub-scheduler.test=image"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


def seen_from_container(url: str) -> str:
    """``url`` with a loopback host replaced by the host's address inside a container."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in LOOPBACK_NAMES:
        return url
    netloc = parts.netloc.replace(parts.hostname, HOST_FROM_CONTAINER, 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.25)


@dataclass
class Container:
    """A detached container; its output is kept by podman until it is removed."""

    name: str
    log_dir: Path
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port

    def url(self, port: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def state(self) -> dict[str, object]:
        result = podman("inspect", "--format", "{{json .State}}", self.name)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def running(self) -> bool:
        return self.state().get("Status") == "running"

    def exit_code(self) -> int:
        return int(self.state()["ExitCode"])  # type: ignore[call-overload]

    def logs(self) -> str:
        result = podman("logs", self.name)
        return result.stdout + result.stderr

    def log_lines(self) -> list[dict[str, object]]:
        """The process's JSON log lines (what is not JSON is left out)."""
        lines = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def stop(self, grace_seconds: int) -> int:
        """SIGTERM (the image's stop signal), SIGKILL after ``grace_seconds``: the exit code."""
        result = podman("stop", "--time", str(grace_seconds), self.name, timeout=grace_seconds + 60)
        assert result.returncode == 0, result.stderr
        return self.exit_code()

    def kill(self) -> int:
        result = podman("kill", "--signal", "KILL", self.name)
        assert result.returncode == 0, result.stderr
        wait = podman("wait", self.name)
        assert wait.returncode == 0, wait.stderr
        return self.exit_code()

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's own HEALTHCHECK, run once (no timer: this machine has no systemd)."""
        return podman("healthcheck", "run", self.name, timeout=60)

    def keep_logs(self) -> Path:
        path = self.log_dir / f"{self.name}.log"
        path.write_text(self.logs())
        return path

    def remove(self) -> None:
        self.keep_logs()
        podman("rm", "--force", "--time", "0", self.name)


@dataclass
class Podman:
    image: str
    log_dir: Path
    started: list[Container] = field(default_factory=list)

    def base_options(self, name: str, network: str = NETWORK) -> list[str]:
        # No healthcheck timer (it needs systemd); `podman healthcheck run` still runs the image's.
        return [f"--name={name}", f"--label={LABEL}", f"--network={network}",
                "--health-interval=disable"]  # fmt: skip

    def run(
        self,
        name: str,
        options: Sequence[str],
        args: Sequence[str],
        *,
        network: str = NETWORK,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a container to its end (a Job's, a CronJob's, a one-off command's); ``network``
        "none" for one that talks to nothing."""
        options = [*self.base_options(name, network), *options]
        result = podman("run", "--rm", *options, self.image, *args, timeout=timeout)
        (self.log_dir / f"{name}.log").write_text(result.stdout + result.stderr)
        return result

    def start(
        self, name: str, options: Sequence[str], args: Sequence[str], ports: Sequence[int] = ()
    ) -> Container:
        """Start a long-running container, its ``ports`` published on free host ports."""
        published = [f"--publish=127.0.0.1::{port}" for port in ports]
        result = podman(
            "run", "--detach", *self.base_options(name), *published, *options, self.image, *args
        )
        assert result.returncode == 0, f"podman run {name} failed:\n{result.stderr}"
        container = Container(name, self.log_dir)
        self.started.append(container)
        for port in ports:
            answer = podman("port", name, f"{port}/tcp")
            assert answer.returncode == 0, answer.stderr
            container.ports[port] = int(answer.stdout.strip().rsplit(":", 1)[1])
        return container

    def remove_all(self) -> None:
        for container in self.started:
            container.remove()
        self.started.clear()
