"""Start-up of the command line, beside the interpreter measured in the same run.

Prints medians over several runs (wall-clock, this machine) of:
- ``python -c pass`` and ``python -c "import keeperhub_scheduler.cli"`` (the floors);
- ``keeperhub-scheduler --help`` (target: under 0.5 s);
- ``dev --demo`` from process start to the banner (target: under 1.5 s) and to the first fire
  (target: within 6 s), each in a fresh scratch directory with a fresh SQLite file.

Run: ``flock /tmp/khs-bench.lock uv run --frozen python bench/startup.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
CLI = [PYTHON, "-m", "keeperhub_scheduler.cli"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_once() -> tuple[float, float]:
    """Seconds from spawning ``dev --demo`` to its banner, and to its first fire."""
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "demo.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="120")
        start = time.perf_counter()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*CLI, "dev", "--demo", "--standin-port", str(free_port())],
                cwd=scratch,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        banner = fire = None
        try:
            while fire is None and time.perf_counter() - start < 60:
                text = log.read_text(errors="replace")
                now = time.perf_counter() - start
                if banner is None and "keeperhub-scheduler dev" in text:
                    banner = now
                if "executed demo-workflow" in text:
                    fire = now
                time.sleep(0.02)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        if banner is None or fire is None:
            raise SystemExit(f"the demo did not fire:\n{log.read_text()[-2000:]}")
        return banner, fire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    def median(command: list[str]) -> float:
        return statistics.median(wall(command) for _ in range(runs))

    floor = median([PYTHON, "-c", "pass"])
    imported = median([PYTHON, "-c", "import keeperhub_scheduler.cli"])
    helped = median([*CLI, "--help"])
    demos = [demo_once() for _ in range(runs)]
    banner = statistics.median(d[0] for d in demos)
    fire = statistics.median(d[1] for d in demos)
    print(f"median of {runs} runs, wall-clock seconds")
    print(f"  python -c pass                     {floor:6.3f}")
    print(f"  python -c 'import ...cli'          {imported:6.3f}  ({imported / floor:.1f}x pass)")
    print(f"  keeperhub-scheduler --help         {helped:6.3f}  (limit 0.5)")
    print(f"  dev --demo: start to banner        {banner:6.3f}  (limit 1.5)")
    print(f"  dev --demo: start to first fire    {fire:6.3f}  (limit 6.0; fires on 5 s slots)")


if __name__ == "__main__":
    main()
