"""Where the CPU goes during a benchmark: CPU seconds by group of processes, read from /proc."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far (children not included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def localstack_pids() -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "localstack.runtime.main"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes: the postmaster, its workers and every backend."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" (", 1)[1].startswith("postgres)"):
                pids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return pids


class MachineClock:
    """CPU seconds by group of processes, and the machine's busy share, from one start.

    Processes may start after ``start`` (PostgreSQL's backends for new connections): each group's
    processes are looked up again at the end and a new one counts from zero.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before = {name: _cpu_by_pid(find()) for name, find in groups.items()}
        self.machine_before = _machine_jiffies()

    def per_execution(self, count: int) -> dict[str, float]:
        """CPU ms per execution of each group since the start."""
        spent = {}
        for name, find in self.groups.items():
            now = _cpu_by_pid(find())
            before = self.before[name]
            seconds = sum(value - before.get(pid, 0.0) for pid, value in now.items())
            spent[name] = seconds / count * 1000
        return spent

    def busy(self) -> float:
        busy, total = (after - before for after, before in zip(
            _machine_jiffies(), self.machine_before, strict=True
        ))  # fmt: skip
        return busy / max(1, total)


def _cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot; idle and iowait are not busy."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already counted in user
    return total - fields[3] - fields[4], total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
