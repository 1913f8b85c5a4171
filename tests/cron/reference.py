"""A brute-force reference for cron fire times, written to be obviously right rather than fast.

It shares no code with the engine. It expands each field with its own tiny parser (valid input
only; ``?`` is ``*``; ``H`` drawn from the seed as cron-parser draws it), lists every matching
local wall-clock time in a window one by one (the day fields: either may match when neither is
exactly ``*`` or ``?``, otherwise both must), asks ZoneInfo which instants show that wall-clock
time (fold=0 and fold=1, kept when they round-trip), and applies the Debian rules to each
wall-clock time literally:

* fixed-time job (minute and hour fields both not starting with "*", "?" or "H/"): the first
  instant of the wall-clock time; if it has none, the instant its gap ends;
* any other job: every instant of the wall-clock time (none in a gap, two in a fold).

The fire times are the set of all these instants, sorted.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {n: i + 1 for i, n in enumerate(_MONTH_NAMES)}
_WEEKDAYS = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@minutely": "* * * * *",
    "@secondly": "* * * * * *",
    "@weekdays": "0 0 * * 1-5",
    "@weekends": "0 0 * * 0,6",
}
_HASHED = re.compile(r"H(?:\((\d+)-(\d+)\))?(?:/(\d+))?L?")
_LONGEST = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February as H's plain max sees it
ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class RefJob:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    nth: frozenset[tuple[int, int]]
    last_weekdays: frozenset[int]
    either_day: bool
    fixed: bool


def _number(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else int(text)


def hash_numbers(seed: str) -> list[float]:
    """cron-parser's six draws for ``hashSeed=seed`` (second, minute, hour, month, day of month,
    day of week): 32-bit FNV-1a over UTF-16 code units, then mulberry32."""
    data = seed.encode("utf-16-le")
    units = [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    state = 0x811C9DC5
    for unit in units:
        state = ((state ^ unit) * 0x01000193) % 2**32
    numbers = []
    for _ in range(6):
        state = (state + 0x6D2B79F5) % 2**32
        t = ((state ^ (state >> 15)) * (state | 1)) % 2**32
        t = t ^ ((t + ((t ^ (t >> 7)) * (t | 61)) % 2**32) % 2**32)
        numbers.append((t ^ (t >> 14)) / 2**32)
    return numbers


def _hashed(item: str, low: int, high: int, number: float, plain_high: int) -> set[int]:
    match = _HASHED.fullmatch(item)
    assert match is not None, item
    first, last, step = match.groups()
    if first is not None:
        low, high = max(low, int(first)), min(high, int(last))
    elif step is None:
        high = plain_high
    one = {math.floor(number * (high - low + 1)) + low}
    if step is None:
        return one
    n = int(step)
    start = (low // n) * n + math.floor(number * n)
    return {v for v in range(start, high + 1, n) if v >= low} or one


def _expand(
    field: str, low: int, high: int, names: dict[str, int], number: float = 0.0, plain_high: int = 0
) -> set[int]:
    values: set[int] = set()
    for item in field.split(","):
        if item.startswith("H"):
            values |= _hashed(item, low, high, number, plain_high or high)
            continue
        base, _, step = item.partition("/")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-")
            first, last = _number(a, names), _number(b, names)
        else:
            first = _number(base, names)
            last = high if step else first
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _wildcard_like(field: str) -> bool:
    return field.startswith(("*", "?", "H/"))


def parse_reference(expression: str, seed: str = "") -> RefJob:
    parts = expression.split()
    if parts[0].startswith("@"):
        parts = _MACROS[parts[0].lower()].split()
    if len(parts) == 5:
        parts = ["0", *parts]
    parts = [part.upper() for part in parts]
    second, minute, hour, dom, month, dow = parts
    draws = hash_numbers(seed)
    months = _expand(month, 1, 12, _MONTHS, draws[3])
    plain_dom = [i for i in dom.split(",") if i != "L"]
    plain_dow, nth, last_weekdays = [], set(), set()
    for item in dow.split(","):
        if "#" in item:
            day, k = item.split("#")
            if day in ("*", "?"):
                nth.update((w, int(k)) for w in range(7))
            else:
                (weekday,) = _expand(day, 0, 7, _WEEKDAYS, draws[5])
                nth.add((weekday % 7, int(k)))
        elif item.endswith("L"):
            (weekday,) = _expand(item[:-1], 0, 7, _WEEKDAYS, draws[5])
            last_weekdays.add(weekday % 7)
        else:
            plain_dow.append(item)
    weekdays = _expand(",".join(plain_dow), 0, 7, _WEEKDAYS, draws[5]) if plain_dow else set()
    longest = max(_LONGEST[m] for m in months)
    days = _expand(",".join(plain_dom), 1, 31, {}, draws[4], longest) if plain_dom else set()
    return RefJob(
        seconds=frozenset(_expand(second, 0, 59, {}, draws[0])),
        minutes=frozenset(_expand(minute, 0, 59, {}, draws[1])),
        hours=frozenset(_expand(hour, 0, 23, {}, draws[2])),
        days=frozenset(days),
        last_day=len(plain_dom) != len(dom.split(",")),
        months=frozenset(months),
        weekdays=frozenset(w % 7 for w in weekdays),
        nth=frozenset(nth),
        last_weekdays=frozenset(last_weekdays),
        either_day=dom not in ("*", "?") and dow not in ("*", "?"),
        fixed=not _wildcard_like(minute) and not _wildcard_like(hour),
    )


def day_matches(job: RefJob, day: date) -> bool:
    if day.month not in job.months:
        return False
    last = calendar.monthrange(day.year, day.month)[1]
    weekday = (day.weekday() + 1) % 7
    dom_ok = day.day in job.days or (job.last_day and day.day == last)
    dow_ok = (
        weekday in job.weekdays
        or (weekday, (day.day - 1) // 7 + 1) in job.nth
        or (weekday in job.last_weekdays and day.day + 7 > last)
    )
    return (dom_ok or dow_ok) if job.either_day else (dom_ok and dow_ok)


def wall_matches(job: RefJob, wall: datetime) -> bool:
    return (
        wall.second in job.seconds
        and wall.minute in job.minutes
        and wall.hour in job.hours
        and day_matches(job, wall.date())
    )


def matching_walls(job: RefJob, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every matching wall-clock time in [start, end), in order (naive datetimes).

    Hours and minutes that lie wholly outside the window are passed over, so that a short window
    of an every-few-seconds job does not list a whole day.
    """
    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    day = start.date()
    while day <= end.date():
        if day_matches(job, day):
            midnight = datetime.combine(day, time())
            for h in sorted(job.hours):
                at_hour = midnight + h * hour
                if at_hour + hour <= start or at_hour >= end:
                    continue
                for m in sorted(job.minutes):
                    at_minute = at_hour + m * minute
                    if at_minute + minute <= start or at_minute >= end:
                        continue
                    for second in sorted(job.seconds):
                        wall = at_minute.replace(second=second)
                        if start <= wall < end:
                            yield wall
        day += timedelta(days=1)


def local(zone: ZoneInfo, instant: datetime) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def instants_of(zone: ZoneInfo, wall: datetime) -> list[datetime]:
    """The instants whose local time is `wall`: none (gap), one, or two (fold).

    A candidate is the wall-clock time minus the offset ZoneInfo gives it for fold=0 or fold=1;
    it counts when converting it back shows the same wall-clock time.
    """
    offsets = {zone.utcoffset(wall.replace(fold=fold)) for fold in (0, 1)}
    found = []
    for offset in offsets:
        assert offset is not None
        instant = (wall - offset).replace(tzinfo=UTC)
        if local(zone, instant) == wall:
            found.append(instant)
    return sorted(found)


def gap_end(zone: ZoneInfo, wall: datetime) -> datetime:
    """The instant the gap that swallowed `wall` ends: the first instant showing a later time."""
    guesses = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    low, high = min(guesses), max(guesses)
    assert local(zone, low) < wall < local(zone, high)
    while high - low > ONE_SECOND:
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        if local(zone, middle) < wall:
            low = middle
        else:
            high = middle
    return high


def fires_of_wall(job: RefJob, zone: ZoneInfo, wall: datetime) -> list[datetime]:
    instants = instants_of(zone, wall)
    if job.fixed:
        return instants[:1] if instants else [gap_end(zone, wall)]
    return instants


def fires_in_walls(job: RefJob, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """All fire instants that come from wall-clock times in [start, end), sorted, distinct."""
    fires: set[datetime] = set()
    for wall in matching_walls(job, start, end):
        fires.update(fires_of_wall(job, zone, wall))
    return sorted(fires)


def _sampled_offsets(zone: ZoneInfo, low: datetime, high: datetime) -> list[timedelta]:
    """The zone's offsets at every 10 minutes of [low, high] and at `high` itself.

    No offset lasts less than 10 minutes, so this sees every offset the zone has in the range.
    """
    step, moment, found = timedelta(minutes=10), low, []
    while moment < high:
        found.append(moment.astimezone(zone).utcoffset())
        moment += step
    found.append(high.astimezone(zone).utcoffset())
    return [offset for offset in found if offset is not None]


def reference_next(
    expression: str, zone_name: str, after: datetime, count: int, seed: str = ""
) -> list[datetime]:
    """The first `count` fire times strictly after `after`, by brute force.

    Walks matching wall-clock times upwards and stops once no later wall-clock time can give a
    fire before the count-th one found.
    """
    job, zone = parse_reference(expression, seed), ZoneInfo(zone_name)
    after = after.astimezone(UTC)
    # A fold soon after `after` shows earlier wall-clock times again: start at the lowest local
    # time of the next two days (folds are shorter than that).
    start = after.replace(tzinfo=None) + min(
        _sampled_offsets(zone, after, after + timedelta(days=2))
    )
    fires: list[datetime] = []
    limit: tuple[datetime, timedelta] | None = None
    for wall in matching_walls(job, start.replace(microsecond=0), datetime(9999, 12, 28)):
        for fire in fires_of_wall(job, zone, wall):
            if fire > after and fire not in fires:
                fires = sorted([*fires, fire])
        if len(fires) < count:
            continue
        last = fires[count - 1]
        if limit is None or limit[0] != last:
            # An instant t <= last whose local time is >= wall satisfies t >= wall - offset(t);
            # instants more than two days before `last` show local times below any wall here.
            limit = (last, max(_sampled_offsets(zone, last - timedelta(days=2), last)))
        if wall - limit[1] > last.replace(tzinfo=None):
            break
    return fires[:count]
