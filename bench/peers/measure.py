"""Measuring a benchmark run: CPU per message in each process that does the work, peak RSS."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from peers.common import localstack_pid


@dataclass
class Cpu:
    """CPU seconds of this process, of the LocalStack in use (when its PID is known) and of
    the PostgreSQL backends serving our engine (by ``application_name``) in ``database``."""

    ours: float = 0.0
    localstack: float | None = None
    postgres: dict[int, float] = field(default_factory=dict)

    @classmethod
    def now(cls, database: str | None = None) -> Cpu:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pid = localstack_pid()
        localstack = _process_cpu(str(pid)) if pid else None
        backends = (
            {pid: _process_cpu(str(pid)) or 0.0 for pid in _backends(database)} if database else {}
        )
        return cls(usage.ru_utime + usage.ru_stime, localstack, backends)

    def per_message(self, later: Cpu, messages: int) -> PerMessage:
        """Microseconds of CPU per message here, in LocalStack and in PostgreSQL."""
        share = PerMessage((later.ours - self.ours) / messages * 1e6)
        if self.localstack is not None and later.localstack is not None:
            share.localstack_us = (later.localstack - self.localstack) / messages * 1e6
        if later.postgres:
            used = sum(cpu - self.postgres.get(pid, 0.0) for pid, cpu in later.postgres.items())
            share.postgres_us = used / messages * 1e6
        return share


@dataclass
class PerMessage:
    """CPU microseconds per message (fire, run) in each process; printed as one phrase."""

    here_us: float
    localstack_us: float | None = None
    postgres_us: float | None = None

    def __str__(self) -> str:
        text = f"{self.here_us:.0f} us/msg here"
        if self.localstack_us is not None:
            text += f", {self.localstack_us:.0f} LocalStack"
        if self.postgres_us is not None:
            text += f", {self.postgres_us:.0f} PostgreSQL"
        return text


def _process_cpu(pid: str) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends(database: str) -> list[int]:
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'keeperhub-scheduler'"
        ).fetchall()
    return [int(row[0]) for row in rows]


def high_water_mb(pid: int) -> float:
    """Peak RSS of the process since its exec (VmHWM). Not ``wait4``'s ru_maxrss: Linux keeps
    the larger of that and the forking parent's RSS, which here is the benchmark's own."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")
