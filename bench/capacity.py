"""The capacity model, computed from measured unit costs: processes and PostgreSQL CPU for a load.

Inputs, each from a benchmark's own output on this machine (re-run them when the code changes):

* dispatcher CPU per fire and PostgreSQL CPU per fire (claim + insert + mark enqueued, in the
  backends serving the dispatcher): ``bench/dispatch.py --json FILE`` (its 10k-due figures);
* executor CPU per run and PostgreSQL CPU per run (claim + record; every PostgreSQL process, WAL
  writer included): ``bench/execute.py``'s printed output, saved to a file. Its last line
  ``executor_cpu_ms_per_run=<x> ...`` when present, else its "CPU ms per execution" row of one
  executor process;
* SQS calls per run: by construction (full batches of ten for send, receive and delete).

    uv run python bench/dispatch.py --sizes 10000 --skip peers,million --json /tmp/dispatch.json
    uv run python bench/execute.py --count 5000 --memory-count 0 | tee /tmp/execute.out
    uv run python bench/capacity.py --dispatch /tmp/dispatch.json --execute /tmp/execute.out

The load (``--schedules``, ``--due``, ``--within``) defaults to the one in docs/capacity.md:
10 million schedules, 100,000 due at the top of one minute, drained within 60 s. Processes are
sized to run at most ``--utilisation`` of one core each (headroom for bursts and the GC), and
to keep their calls in flight within the concurrency settings at the assumed latencies of a
KeeperHub call (``--keeperhub-seconds``) and an SQS batch call (``--sqs-seconds``): those two are
the only inputs not measured here.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from keeperhub_scheduler.config import Settings

SQS_BATCH = 10  # SendMessageBatch, ReceiveMessage and DeleteMessageBatch carry up to ten
RELAY_CONCURRENCY = Settings.model_fields["scheduler_relay_concurrency"].default
EXECUTOR_CONCURRENCY = Settings.model_fields["scheduler_executor_concurrency"].default


@dataclass(frozen=True)
class UnitCosts:
    dispatcher_us_per_fire: float
    postgres_us_per_fire: float
    executor_us_per_run: float
    postgres_us_per_run: float
    sqs_calls_per_run: float = 3 / SQS_BATCH  # one send, one receive, one delete per ten runs


def dispatch_costs(path: Path, size: int) -> tuple[float, float]:
    """(dispatcher, PostgreSQL) CPU microseconds per fire at ``size`` due, from dispatch.py."""
    data = json.loads(path.read_text())
    figures = data.get(f"ours_{size}")
    if figures is None:
        sizes = sorted(key for key in data if key.startswith("ours_"))
        raise SystemExit(f"{path} has no ours_{size}; it has {sizes}: run dispatch.py at {size}")
    return figures["dispatcher_cpu_us_per_fire"], figures["postgres_cpu_us_per_fire"]


def execute_costs(path: Path) -> tuple[float, float]:
    """(executor, PostgreSQL) CPU microseconds per run, from execute.py's printed output."""
    text = path.read_text()
    executor = re.findall(r"executor_cpu_ms_per_run=([0-9.]+)", text)
    postgres_line = re.findall(r"postgres_cpu_ms_per_run=([0-9.]+)", text)
    row = re.search(r"^\s+end to end, 1 executor process\s+(.*)$", text, re.MULTILINE)
    cells = dict(re.findall(r"([A-Za-z-]+) ([0-9.]+)", row.group(1))) if row else {}
    executor_ms = float(executor[-1]) if executor else float(cells.get("executor", "nan"))
    postgres_ms = (
        float(postgres_line[-1]) if postgres_line else float(cells.get("PostgreSQL", "nan"))
    )
    if math.isnan(executor_ms) or math.isnan(postgres_ms):
        raise SystemExit(f"{path}: no executor or PostgreSQL CPU per run found")
    return executor_ms * 1000, postgres_ms * 1000


@dataclass(frozen=True)
class Load:
    schedules: int
    due: int
    within: float  # seconds to drain the burst
    utilisation: float  # of one core, per process
    keeperhub_seconds: float = 0.1  # one KeeperHub call (assumed; KeeperHub's, not ours)
    sqs_seconds: float = 0.02  # one SQS batch call in-region (assumed)

    @property
    def rate(self) -> float:
        return self.due / self.within


def model(costs: UnitCosts, load: Load) -> list[tuple[str, str, str]]:
    """(what, value, how) rows; every value follows from the unit costs and the load."""
    rate = load.rate
    dispatcher_cores = rate * costs.dispatcher_us_per_fire / 1e6
    executor_cores = rate * costs.executor_us_per_run / 1e6
    postgres_us = costs.postgres_us_per_fire + costs.postgres_us_per_run
    postgres_cores = rate * postgres_us / 1e6
    # A process is held back by its CPU or by its calls in flight, whichever binds first.
    per_dispatcher = min(
        1e6 * load.utilisation / costs.dispatcher_us_per_fire,
        RELAY_CONCURRENCY * SQS_BATCH / load.sqs_seconds,
    )
    per_executor = min(
        1e6 * load.utilisation / costs.executor_us_per_run,
        EXECUTOR_CONCURRENCY / load.keeperhub_seconds,
    )
    per_postgres_core = 1e6 / postgres_us
    return [
        ("load", f"{rate:,.0f} runs/s", f"{load.due:,} due / {load.within:.0f} s"),
        (
            "dispatcher processes",
            f"{math.ceil(rate / per_dispatcher)}",
            f"{dispatcher_cores:.2f} cores; one process {per_dispatcher:,.0f} fires/s"
            f" (CPU at {load.utilisation:.0%} of a core, or {RELAY_CONCURRENCY} sends of ten"
            f" in flight at {load.sqs_seconds * 1000:.0f} ms)",
        ),
        (
            "executor processes",
            f"{math.ceil(rate / per_executor)}",
            f"{executor_cores:.2f} cores; one process {per_executor:,.0f} runs/s"
            f" (CPU at {load.utilisation:.0%} of a core, or {EXECUTOR_CONCURRENCY} calls"
            f" in flight at {load.keeperhub_seconds * 1000:.0f} ms)",
        ),
        (
            "PostgreSQL CPU",
            f"{postgres_cores:.2f} cores",
            f"{postgres_us:.0f} us per run ({costs.postgres_us_per_fire:.0f} dispatch +"
            f" {costs.postgres_us_per_run:.0f} execute); one core {per_postgres_core:,.0f} runs/s",
        ),
        (
            "SQS calls",
            f"{rate * costs.sqs_calls_per_run:,.0f} calls/s",
            f"{costs.sqs_calls_per_run:.1f} per run (send, receive, delete in tens)",
        ),
        (
            "rows written",
            f"{rate * 5:,.0f} row versions/s",
            "per run: insert, schedule advance, enqueued, claimed, recorded (+ schedule)",
        ),
        (
            "stored schedules",
            f"{load.schedules:,}",
            "the claim walks the due index: its cost does not grow with them (dispatch.py (d))",
        ),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dispatch", type=Path, required=True, help="dispatch.py --json output")
    parser.add_argument("--dispatch-size", type=int, default=10_000, help="its due size to use")
    parser.add_argument("--execute", type=Path, required=True, help="execute.py printed output")
    parser.add_argument("--schedules", type=int, default=10_000_000)
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--within", type=float, default=60.0)
    parser.add_argument("--utilisation", type=float, default=0.7)
    parser.add_argument("--keeperhub-seconds", type=float, default=0.1, help="one call, assumed")
    parser.add_argument("--sqs-seconds", type=float, default=0.02, help="one batch call, assumed")
    parser.add_argument("--json", type=Path, help="write the inputs and the model here")
    arguments = parser.parse_args(argv)
    dispatcher, postgres_fire = dispatch_costs(arguments.dispatch, arguments.dispatch_size)
    executor, postgres_run = execute_costs(arguments.execute)
    costs = UnitCosts(dispatcher, postgres_fire, executor, postgres_run)
    load = Load(
        arguments.schedules,
        arguments.due,
        arguments.within,
        arguments.utilisation,
        arguments.keeperhub_seconds,
        arguments.sqs_seconds,
    )
    rows = model(costs, load)
    print("measured unit costs (CPU):")
    print(f"  dispatcher          {costs.dispatcher_us_per_fire:8.0f} us per fire")
    print(f"  PostgreSQL          {costs.postgres_us_per_fire:8.0f} us per fire (dispatch)")
    print(f"  executor            {costs.executor_us_per_run:8.0f} us per run")
    print(f"  PostgreSQL          {costs.postgres_us_per_run:8.0f} us per run (execute)")
    print(f"  SQS                 {costs.sqs_calls_per_run:8.1f} calls per run")
    print(
        f"\nmodel: {load.schedules:,} schedules, {load.due:,} due at once, within {load.within} s"
    )
    for what, value, how in rows:
        print(f"  {what:22} {value:>20}  {how}")
    if arguments.json:
        report = {"costs": costs.__dict__, "load": load.__dict__, "rows": rows}
        arguments.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
