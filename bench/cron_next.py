"""Next-fire computations per second: keeperhub_scheduler.cron against cronsim and croniter.

Each library is asked the same questions in the same run, in two ways:

* walk:  successive fire times from one iterator (how the dispatcher reads a schedule);
* fresh: the first fire time after a new instant each time, a new iterator per computation
  (how the API's preview and a one-off ``next_run_at`` ask).

Every cell runs for a fixed slice of time; the figure is computations per second. "overall" is
the geometric mean over the expressions. cronsim and croniter get the start as an aware local
datetime of the zone (their way of doing zones). Run with ``uv run python bench/cron_next.py``;
it takes about 40 seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim

from keeperhub_scheduler.cron import iter_fire_times, next_fire_times

EXPRESSIONS = [
    ("fixed daily", "30 2 * * *"),
    ("every minute", "* * * * *"),
    ("every 15 s (6 fields)", "*/15 * * * * *"),
    ("weekdays 9-17", "0 9-17 * * 1-5"),
    ("29 February", "0 0 29 2 *"),
    ("fifth Friday", "0 0 * * 5#5"),
    ("last day of month", "0 0 L * *"),
]
ZONES = ["UTC", "America/New_York"]
LIBRARIES = ["keeperhub", "cronsim", "croniter"]
SLICE = 0.2  # seconds per cell
START = datetime(2025, 1, 1, 0, 0, 7, tzinfo=UTC)
STRIDE = timedelta(hours=7, minutes=13, seconds=11)  # fresh starts: spread over every hour

Step = Callable[[], object]


def _croniter(expression: str, start: datetime) -> croniter:
    # croniter reads a 6th field as seconds at the end unless told otherwise.
    return croniter(expression, start, second_at_beginning=len(expression.split()) == 6)


def walker(library: str, expression: str, zone: str) -> Step:
    """One call = the next fire time of a long-lived iterator, started over when it runs out of
    years (a fast walk of ``0 0 29 2 *`` passes year 9999 within one slice)."""
    current = [_walker(library, expression, zone)]

    def step() -> object:
        try:
            return current[0]()
        except Exception:
            current[0] = _walker(library, expression, zone)
            return current[0]()  # a library that fails from the start fails here, for good

    return step


def _walker(library: str, expression: str, zone: str) -> Step:
    local_start = START.astimezone(ZoneInfo(zone))
    if library == "keeperhub":
        ours: Iterator[datetime] = iter_fire_times(expression, zone, START)
        return lambda: next(ours)
    if library == "cronsim":
        theirs = CronSim(expression, local_start)
        return lambda: next(theirs)
    other = _croniter(expression, local_start)
    return lambda: other.get_next(datetime)


def fresh(library: str, expression: str, zone: str) -> Step:
    """One call = the first fire time after a new instant, from scratch."""
    tz = ZoneInfo(zone)
    state = {"after": START}

    def advance() -> datetime:
        state["after"] += STRIDE
        return state["after"]

    if library == "keeperhub":
        return lambda: next_fire_times(expression, zone, advance(), 1)
    if library == "cronsim":
        return lambda: next(CronSim(expression, advance().astimezone(tz)))
    return lambda: _croniter(expression, advance().astimezone(tz)).get_next(datetime)


def rate(step: Step) -> float:
    """Computations per second over one time slice (after one warm-up call)."""
    step()
    count, started = 0, time.perf_counter()
    deadline = started + SLICE
    while True:
        for _ in range(16):
            step()
        count += 16
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def measure(make: Callable[[str, str, str], Step]) -> dict[tuple[str, str, str], float]:
    results = {}
    for zone in ZONES:
        for _, expression in EXPRESSIONS:
            for library in LIBRARIES:
                try:
                    results[(zone, expression, library)] = rate(make(library, expression, zone))
                except Exception:  # a library that cannot do this expression gets no figure
                    results[(zone, expression, library)] = math.nan
    return results


def table(title: str, results: dict[tuple[str, str, str], float]) -> None:
    print(f"\n{title} (computations per second)")
    header = f"{'zone':<17}{'expression':<24}{'':<16}" + "".join(f"{lib:>12}" for lib in LIBRARIES)
    print(header + f"{'ours/cronsim':>14}")
    print("-" * (len(header) + 14))
    for zone in ZONES:
        for label, expression in EXPRESSIONS:
            figures = [results[(zone, expression, lib)] for lib in LIBRARIES]
            cells = "".join(f"{f:>12,.0f}" for f in figures)  # nan prints as "nan"
            print(f"{zone:<17}{label:<24}{expression:<16}{cells}{figures[0] / figures[1]:>13.1f}x")
    overall = []
    for lib in LIBRARIES:
        values = [v for (_, _, name), v in results.items() if name == lib and not math.isnan(v)]
        overall.append(math.exp(sum(math.log(v) for v in values) / len(values)))
    cells = "".join(f"{f:>12,.0f}" for f in overall)
    print(f"{'overall (geometric mean)':<57}{cells}{overall[0] / overall[1]:>13.1f}x")


def main() -> None:
    started = time.perf_counter()
    table("walk: successive fires from one iterator", measure(walker))
    table("fresh: first fire after a new instant", measure(fresh))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
