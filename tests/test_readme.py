"""The README's commands work as written, pasted into a fresh shell in the repository: the tour
runs for real against a running demo (in a scratch directory, through a link to ``./khs``); every
other ``./khs`` command answers its ``--help`` and every ``make`` target exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.standin import free_port

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```bash\n(.*?)^```$", README, re.S | re.M)
TOUR = next(block for block in BLOCKS if block.startswith("./khs --help"))


def fresh_shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``bash`` with only HOME and a plain PATH, as a new terminal would have."""
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/local/bin:/usr/bin:/bin", "COLUMNS": "120"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def commands() -> list[str]:
    lines = (line.split("#")[0].strip() for block in BLOCKS for line in block.splitlines())
    return [line for line in lines if line]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Path]:
    """``dev --demo`` in a scratch directory with ``./khs`` linked in, until it has fired."""
    (tmp_path / "khs").symlink_to(ROOT / "khs")
    log = (tmp_path / "demo.log").open("wb")
    env = {"HOME": os.environ["HOME"], "PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keeperhub_scheduler.cli",
            "dev",
            "--demo",
            "--standin-port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "executed demo-workflow" not in (tmp_path / "demo.log").read_text():
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
            time.sleep(0.5)
        yield tmp_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_tour_runs_as_pasted_beside_the_demo(demo: Path) -> None:
    result = fresh_shell(TOUR, demo)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo-workflow" in result.stdout
    assert "first look" in result.stdout or "manual" in result.stdout
    assert "Schedules" in result.stdout


@pytest.mark.parametrize("command", [c for c in commands() if c.startswith("./khs ")])
def test_every_khs_command_exists(command: str) -> None:
    words = shlex.split(command.replace('"$id"', "ID"))[1:]
    path = [word for word in words if not word.startswith("-")][:2]
    result = fresh_shell(shlex.join(["./khs", *path, "--help"]), ROOT)
    if result.returncode != 0:  # a positional argument (e.g. a cron) ends the command's name
        result = fresh_shell(shlex.join(["./khs", *path[:1], "--help"]), ROOT)
    assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"


@pytest.mark.parametrize("command", [c for c in commands() if c.startswith("make ")])
def test_every_make_target_exists(command: str) -> None:
    result = fresh_shell(f"make -n {shlex.split(command)[1]}", ROOT)
    assert result.returncode == 0, result.stderr
