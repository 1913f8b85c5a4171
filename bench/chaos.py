"""Chaos run: the production pipeline while its processes are killed and its queue goes away.

200 schedules (every second, every minute, every 5/15 seconds, and interval schedules, in
several zones) run on PostgreSQL + LocalStack with two dispatchers and two executors as separate
processes. Every few seconds one of the four is SIGKILLed and restarted; LocalStack is frozen once
for 20 s; the KeeperHub stand-in answers 500 to 10% of calls and stalls 2% past the executor's
read timeout. At the end, the stand-in's log is compared with the occurrences that
``Timing.occurrences_after`` (the same engine as ``next_fire_times``) says the window holds:

* expected: occurrences in the window; executed: those that reached the stand-in;
* missing: expected but never executed;
* duplicated: occurrences that reached the stand-in under more than one executionId (retries of
  one run carry the same executionId and count once);
* late: first arrival at the stand-in minus the occurrence, p50/p99, outside the outage and the
  recovery after it; the recovery (thaw until the backlog is worked off) is printed on its own,
  and so is p99 with the recovery counted in. The outage begins, for this split, a takeover
  (hand-off + relay lease) before the freeze: an occurrence due then may still be in the hands of
  a process killed just before it, and its takeover falls into the outage.

    uv run python bench/chaos.py                 # 3 minutes
    uv run python bench/chaos.py --duration 60 --json result.json
Exit code 0 when nothing is missing and nothing is duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Database, LocalStack, clean_up_on_sigterm
from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.timing import Timing
from keeperhub_scheduler.transport.messages import parse_instant
from keeperhub_scheduler.transport.sqs import QueueEndpoint, setup_queues
from tests.support.processes import environment, spawn
from tests.support.standin import StandInProcess, free_port

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
READ_TIMEOUT = 3
# Run as an operator would: the queue's visibility timeout, the hand-off (how soon an executor's
# received or mid-call runs are taken over) and the relay lease (a dispatcher's claimed, unsent
# runs) are the settings' defaults, not tuned for the run.
_FIELDS = Settings.model_fields
VISIBILITY = int(_FIELDS["scheduler_visibility_timeout_seconds"].default)
# The settings' default, or a hand-off under trial (SCHEDULER_HANDOFF_SECONDS in the environment).
HANDOFF = int(
    os.environ.get("SCHEDULER_HANDOFF_SECONDS", _FIELDS["scheduler_handoff_seconds"].default)
)
RELAY_LEASE = float(_FIELDS["scheduler_relay_lease_seconds"].default)


@dataclass
class Result:
    duration_seconds: int
    schedules: int
    expected: int
    executed: int
    missing: int
    duplicated: int
    retried_calls: int
    calls: int
    kills: int
    late_p50_seconds: float
    late_p99_seconds: float
    late_max_seconds: float
    outage_seconds: int
    recovery_seconds: float
    recovered_in_window: bool
    late_p99_outside_outage_seconds: float


def schedule_mix(count: int, start: datetime, end: datetime) -> list[dict[str, object]]:
    """A quarter each: every second, every minute, every 5 or 15 s, and intervals of 3-11 s."""
    rows = []
    for index in range(count):
        zone = ZONES[index % len(ZONES)]
        row: dict[str, object] = {"timezone": zone, "start_at": start, "end_at": end}
        kind = index % 4
        if kind == 0:
            row["cron_expression"] = "* * * * * *"
        elif kind == 1:
            row["cron_expression"] = "* * * * *"
        elif kind == 2:
            row["cron_expression"] = random.choice(["*/5 * * * * *", "*/15 * * * * *"])
        else:
            seconds = random.choice([3, 7, 11])
            row |= {"interval_seconds": seconds, "cron_expression": f"@every {seconds}s"}
            row["anchor_at"] = start + timedelta(milliseconds=random.randrange(1000))
        rows.append(row)
    return rows


def expected_occurrences(rows: list[dict[str, object]]) -> set[tuple[str, datetime]]:
    expected = set()
    for index, row in enumerate(rows):
        timing = Timing.of(
            None if row.get("interval_seconds") else str(row["cron_expression"]),
            str(row["timezone"]),
            interval_seconds=row.get("interval_seconds"),  # type: ignore[arg-type]
            anchor_at=row.get("anchor_at"),  # type: ignore[arg-type]
            start_at=row["start_at"],  # type: ignore[arg-type]
            end_at=row["end_at"],  # type: ignore[arg-type]
        )
        start = row["start_at"] - timedelta(microseconds=1)  # type: ignore[operator]
        for occurrence in timing.occurrences_after(start):
            expected.add((f"s{index}", occurrence))
    return expected


def create_schedules(database: Database, rows: list[dict[str, object]]) -> None:
    with database.connect() as connection:
        for index, row in enumerate(rows):
            connection.execute(
                "INSERT INTO workflows (id, name, enabled) VALUES (%s, %s, true)",
                (f"wf{index}", f"chaos {index}"),
            )
            connection.execute(
                "INSERT INTO workflow_schedules (id, workflow_id, cron_expression, timezone,"
                " interval_seconds, anchor_at, start_at, end_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (f"s{index}", f"wf{index}", row["cron_expression"], row["timezone"],
                 row.get("interval_seconds"), row.get("anchor_at"), row["start_at"],
                 row["end_at"]),
            )  # fmt: skip


class Fleet:
    """Two dispatchers and two executors, each restartable after a SIGKILL."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.roles = ["dispatcher-1", "dispatcher-2", "executor-1", "executor-2"]
        self.processes = {role: self._start(role) for role in self.roles}
        self.kills = 0

    def _start(self, role: str):  # type: ignore[no-untyped-def]
        command = ["dispatcher"] if role.startswith("dispatcher") else ["executor"]
        return spawn(command, self.env, self.logs / f"{role}.log")

    def kill_one(self) -> str:
        role = random.choice(self.roles)
        process = self.processes[role]
        process.kill()
        process.wait()
        self.processes[role] = self._start(role)
        self.kills += 1
        return role

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except Exception:
                process.kill()


@dataclass(frozen=True)
class Lateness:
    """First arrival at the stand-in minus the occurrence, split by the outage."""

    steady: list[float]  # outside the outage and the recovery after it
    outside_outage: list[float]  # outside the outage only (the recovery's backlog included)
    recovery_seconds: float  # thaw until the pipeline was on time again
    recovered: bool  # False: not on time again by the end of the window


def analyse(
    calls: list[dict[str, object]],
    expected: set[tuple[str, datetime]],
    outage: tuple[datetime, datetime],
) -> tuple[int, int, int, Lateness]:
    executions: dict[tuple[str, datetime], set[str]] = defaultdict(set)
    first_arrival: dict[tuple[str, datetime], float] = {}
    for call in calls:
        payload = call["input"]
        assert isinstance(payload, dict)
        key = (str(payload["scheduleId"]), parse_instant(str(payload["triggerTime"])))
        executions[key].add(str(call["executionId"]))
        arrived = float(call["receivedAt"])  # type: ignore[arg-type]
        first_arrival[key] = min(first_arrival.get(key, arrived), arrived)
    executed = expected & executions.keys()
    duplicated = sum(1 for ids in executions.values() if len(ids) > 1)
    retried = len(calls) - sum(len(ids) for ids in executions.values())
    late = {key: first_arrival[key] - key[1].timestamp() for key in executed}
    frozen, thawed = outage
    in_hand = timedelta(seconds=HANDOFF + RELAY_LEASE)
    return len(executed), duplicated, retried, split_lateness(late, (frozen - in_hand, thawed))


def split_lateness(
    late: dict[tuple[str, datetime], float], outage: tuple[datetime, datetime]
) -> Lateness:
    """The outage leaves a backlog that the pipeline works off after the thaw, at its full
    throughput; until it has, new occurrences queue behind it. Recovery ends with the first
    second after the thaw whose occurrences arrived, in the median, within a second (the median,
    so that a run held by a just-killed executor does not count as the backlog). A window that
    ends before that second has no steady state after the outage: the recovery runs to its end
    and is reported as not finished."""
    frozen, thawed = outage
    by_second: dict[datetime, list[float]] = defaultdict(list)
    for (_, instant), seconds in late.items():
        if instant >= thawed:
            by_second[instant.replace(microsecond=0)].append(seconds)
    end = max(by_second) + timedelta(seconds=1) if by_second else thawed
    recovered = next(
        (second for second in sorted(by_second) if statistics.median(by_second[second]) < 1.0),
        end,
    )
    return Lateness(
        steady=[s for (_, at), s in late.items() if not frozen <= at < recovered],
        outside_outage=[s for (_, at), s in late.items() if not frozen <= at < thawed],
        recovery_seconds=(recovered - thawed).total_seconds(),
        recovered=recovered < end,
    )


def recovery_text(result: Result) -> str:
    if result.recovered_in_window:
        return str(result.recovery_seconds)
    return f"> {result.recovery_seconds} (not on time again before the window ended)"


def quantile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return round(values[0], 3) if values else 0.0
    return round(statistics.quantiles(values, n=100)[percent - 1], 3)


def run(duration: int, count: int, kill_every: float, outage_seconds: int, workdir: Path) -> Result:
    database = Database("chaos")
    localstack = LocalStack(free_port())
    standin = StandInProcess(workdir / "standin.jsonl")
    fleet: Fleet | None = None
    try:
        endpoint = QueueEndpoint(
            queue_url=f"{localstack.url}/000000000000/chaos",
            dlq_url=f"{localstack.url}/000000000000/chaos-dlq",
            region="us-east-1",
            endpoint_url=localstack.url,
            access_key_id="test",
            secret_access_key="test",
        )
        import asyncio

        asyncio.run(setup_queues(endpoint, visibility_timeout=VISIBILITY, max_receive_count=50))
        standin.post(
            "/_control/chaos",
            {"failRate": 0.10, "stallRate": 0.02, "stallSeconds": READ_TIMEOUT + 2},
        )
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
        end = start + timedelta(seconds=duration)
        rows = schedule_mix(count, start, end)
        create_schedules(database, rows)
        expected = expected_occurrences(rows)
        env = environment(
            database.url,
            endpoint,
            keeperhub_url=standin.url,
            SCHEDULER_HTTP_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
            SCHEDULER_RETRY_BASE_SECONDS="1",
            SCHEDULER_RETRY_MAX_SECONDS="5",
            SCHEDULER_MAX_ATTEMPTS="10",
            SCHEDULER_RECEIVE_WAIT_SECONDS="2",
            SCHEDULER_DRAIN_SECONDS="10",
            SCHEDULER_HANDOFF_SECONDS=str(HANDOFF),
        )
        fleet = Fleet(env, workdir)
        outage = chaos_loop(fleet, localstack, start, end, kill_every, outage_seconds)
        settle(standin, expected, timeout=120)
        calls = standin.calls()
        executed, duplicated, retried, late = analyse(calls, expected, outage)
        return Result(
            duration_seconds=duration,
            schedules=count,
            expected=len(expected),
            executed=executed,
            missing=len(expected) - executed,
            duplicated=duplicated,
            retried_calls=retried,
            calls=len(calls),
            kills=fleet.kills,
            late_p50_seconds=quantile(late.steady, 50),
            late_p99_seconds=quantile(late.steady, 99),
            late_max_seconds=round(max(late.steady, default=0.0), 3),
            recovery_seconds=late.recovery_seconds,
            recovered_in_window=late.recovered,
            late_p99_outside_outage_seconds=quantile(late.outside_outage, 99),
            outage_seconds=outage_seconds,
        )
    finally:
        if fleet is not None:
            fleet.stop()
        standin.stop()
        localstack.stop()
        database.drop()


def chaos_loop(
    fleet: Fleet,
    localstack: LocalStack,
    start: datetime,
    end: datetime,
    kill_every: float,
    outage_seconds: int,
) -> tuple[datetime, datetime]:
    """Kill a random process every ``kill_every`` s; freeze LocalStack once, a third of the way."""
    outage_start = start + (end - start) / 3
    outage_end = outage_start + timedelta(seconds=outage_seconds)
    frozen = thawed = False
    next_kill = time.monotonic() + _kill_interval(kill_every)
    while datetime.now(UTC) < end:
        now = datetime.now(UTC)
        if not frozen and now >= outage_start:
            localstack.freeze()
            frozen = True
            print(f"{now:%H:%M:%S} LocalStack frozen for {outage_seconds} s", flush=True)
        if frozen and not thawed and now >= outage_end:
            localstack.thaw()
            thawed = True
            print(f"{now:%H:%M:%S} LocalStack back", flush=True)
        if time.monotonic() >= next_kill and now >= start:
            print(f"{now:%H:%M:%S} SIGKILL {fleet.kill_one()} (restarted)", flush=True)
            next_kill = time.monotonic() + _kill_interval(kill_every)
        time.sleep(0.2)
    if frozen and not thawed:
        localstack.thaw()
    return outage_start, outage_end


def _kill_interval(kill_every: float) -> float:
    """Around ``kill_every``, at random: fixed steps from a whole second would land every kill
    on the top-of-the-second burst, which real crashes do not aim for."""
    return random.uniform(0.5, 1.5) * kill_every


def settle(standin: StandInProcess, expected: set[tuple[str, datetime]], timeout: float) -> None:
    """Wait until every expected occurrence reached the stand-in, or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {
            (str(c["input"]["scheduleId"]), parse_instant(str(c["input"]["triggerTime"])))  # type: ignore[index]
            for c in standin.calls()
        }
        if expected <= seen:
            return
        time.sleep(2)


def print_table(result: Result) -> None:
    rows = [
        ("schedules", result.schedules),
        ("window (s)", result.duration_seconds),
        ("processes killed (SIGKILL)", result.kills),
        ("LocalStack outage (s)", result.outage_seconds),
        ("visibility / hand-off / relay lease (s)", f"{VISIBILITY} / {HANDOFF} / {RELAY_LEASE}"),
        ("expected occurrences", result.expected),
        ("executed", result.executed),
        ("missing", result.missing),
        ("duplicated", result.duplicated),
        ("calls (incl. retries)", result.calls),
        ("retried calls (same executionId)", result.retried_calls),
        ("recovery after the outage (s)", recovery_text(result)),
        ("late p50 (s, outside outage + recovery)", result.late_p50_seconds),
        ("late p99 (s, outside outage + recovery)", result.late_p99_seconds),
        ("late max (s, outside outage + recovery)", result.late_max_seconds),
        ("late p99 (s, outside outage, recovery in)", result.late_p99_outside_outage_seconds),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    print(
        "\nTargets: missing 0, duplicated 0, late p99 < 2 s outside the outage and the recovery"
        " from it (the backlog of the outage worked off at the pipeline's full throughput)."
    )


def main() -> int:
    clean_up_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=180, help="window in seconds")
    parser.add_argument("--schedules", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--outage", type=int, default=20, help="LocalStack outage in seconds")
    parser.add_argument("--json", type=Path, help="also write the result here")
    arguments = parser.parse_args()
    workdir = Path(__import__("tempfile").mkdtemp(prefix="khs-chaos-"))
    print(f"logs in {workdir}", flush=True)
    result = run(
        arguments.duration, arguments.schedules, arguments.kill_every, arguments.outage, workdir
    )
    print_table(result)
    if arguments.json:
        arguments.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.missing == 0 and result.duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
