"""Matching in local wall-clock time: which days, which times of day, and the next match.

Wall-clock times are plain integers here, "local seconds": the local date and time read as if it
were UTC, in seconds since 1970-01-01. That keeps a search to integer arithmetic; `search.py` turns
a local second into an instant by subtracting the zone's offset.

Which days of a month match depends only on the month's length and the weekday of its 1st, so
each expression caches one 31-bit mask per (length, weekday) pair: at most 28 of them. Finding the
next matching day is then a bit scan, and whole months are skipped at once, which keeps rare
schedules such as ``0 0 29 2 *`` or ``0 0 * * 5#5`` quick.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date
from typing import Final

from .expression import MAX_MONTH_LENGTH, CronExpression

DAY: Final = 86_400
UNIX_ORDINAL: Final = date(1970, 1, 1).toordinal()
FIRST_DAY: Final = date(1, 1, 1).toordinal() - UNIX_ORDINAL
LAST_YEAR: Final = 9999


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _mask(expr: CronExpression, length: int, first_weekday: int) -> int:
    """Bit d-1 set for each day d of a month of `length` days whose 1st is `first_weekday`."""
    key = (length, first_weekday)
    cached = expr._month_masks.get(key)
    if cached is not None:
        return cached
    day_of_month = expr.day_of_month_bits & ((1 << length) - 1)
    if expr.last_day_of_month:
        day_of_month |= 1 << (length - 1)
    # The first day of the month that falls on weekday w (0 = Sunday), for w = 0..6.
    first = [(w - first_weekday) % 7 + 1 for w in range(7)]
    day_of_week = 0
    for w in range(7):
        if expr.day_of_week_bits >> w & 1:
            for d in range(first[w], length + 1, 7):
                day_of_week |= 1 << (d - 1)
    for w, k in expr.nth_weekdays:
        d = first[w] + 7 * (k - 1)
        if d <= length:
            day_of_week |= 1 << (d - 1)
    for w in expr.last_weekdays:
        day_of_week |= 1 << (first[w] + 7 * ((length - first[w]) // 7) - 1)
    mask = day_of_month | day_of_week if expr.days_match_either else day_of_month & day_of_week
    expr._month_masks[key] = mask
    return mask


def day_fields_ever_match(expr: CronExpression) -> bool:
    """True when some day of some selected month matches (every month shape occurs in time)."""
    for month in expr.months:
        lengths = (28, 29) if month == 2 else (MAX_MONTH_LENGTH[month],)
        for length in lengths:
            if any(_mask(expr, length, weekday) for weekday in range(7)):
                return True
    return False


def next_day(expr: CronExpression, day: int) -> int | None:
    """The first matching day >= `day` (days since 1970-01-01), or None after year 9999."""
    asked, answer = expr._next_day_memo[0]
    if asked <= day <= answer:
        return answer  # consecutive searches mostly ask about the same day
    found = _next_day(expr, max(day, FIRST_DAY))
    if found is not None:
        expr._next_day_memo[0] = (day, found)
    return found


def _next_day(expr: CronExpression, day: int) -> int | None:
    """next_day without the memo: month by month, a bit scan in each selected month."""
    start = date.fromordinal(day + UNIX_ORDINAL)
    year, month, day_of_month = start.year, start.month, start.day
    months = expr.months
    while year <= LAST_YEAR:
        if month in months:
            first = date(year, month, 1).toordinal()
            length = 28 if month == 2 and not _is_leap(year) else MAX_MONTH_LENGTH[month]
            rest = _mask(expr, length, first % 7) >> (day_of_month - 1)
            if rest:
                # Index of the lowest set bit: the first matching day from here on.
                offset = (rest & -rest).bit_length() - 1
                return first - UNIX_ORDINAL + day_of_month - 1 + offset
        month, day_of_month = month + 1, 1
        if month == 13:
            year, month = year + 1, 1
    return None


def next_time_of_day(expr: CronExpression, second_of_day: int) -> int | None:
    """The first matching second of the day >= `second_of_day`, or None if none is left."""
    minute_of_day, second = divmod(second_of_day, 60)
    minutes = expr.minutes_of_day
    i = bisect_left(minutes, minute_of_day)
    if i < len(minutes) and minutes[i] == minute_of_day:
        seconds = expr.seconds
        j = bisect_left(seconds, second)
        if j < len(seconds):
            return minute_of_day * 60 + seconds[j]
        i += 1
    if i < len(minutes):
        return minutes[i] * 60 + expr.seconds[0]
    return None


def next_match(expr: CronExpression, local: int) -> int | None:
    """The first matching wall-clock time >= `local` (local seconds), or None after year 9999."""
    day, second_of_day = divmod(local, DAY)
    found = next_day(expr, day)
    if found == day:
        time_of_day = next_time_of_day(expr, second_of_day)
        if time_of_day is not None:
            return day * DAY + time_of_day
        found = next_day(expr, day + 1)
    if found is None:
        return None
    return found * DAY + expr.minutes_of_day[0] * 60 + expr.seconds[0]
