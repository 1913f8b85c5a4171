"""Plain-English descriptions of cron expressions, by cron-descriptor.

cron-descriptor reads most expressions the way we do, and its wording is kept for them ("At 09:00,
Monday through Friday"). Its day-of-week text is wrong for a few: steps ("1/2" becomes "every 2
days of the week" instead of Monday, Wednesday, Friday and Sunday), lists that mix ``n#k`` or
``nL`` with other days, a missing "or" before ``n#k`` under the Vixie rule, and an "or" where the
day fields must both match (``*/2`` with ``MON``). For those the day-of-week phrase is written
here from the parsed expression and placed where cron-descriptor puts its own.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from cron_descriptor import ExpressionDescriptor, Options

from .expression import CronExpression
from .parse import parse_cron

# "a-a/n" is the single value a; cron-descriptor would read it as "every n, a through a".
_SAME_ENDS_STEP: Final = re.compile(r"(?<![0-9A-Z])([0-9A-Z]+)-\1/[0-9]+")
_DAY_NAMES: Final = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_ORDINALS: Final = ("", "first", "second", "third", "fourth", "fifth")
_MONDAY_FIRST: Final = (1, 2, 3, 4, 5, 6, 0)


def _options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True  # 0 is Sunday, as in our parser
    options.verbose = False
    return options


def _join(pieces: list[str]) -> str:
    return pieces[0] if len(pieces) == 1 else ", ".join(pieces[:-1]) + " or " + pieces[-1]


def _weekday_runs(bits: int) -> list[str]:
    """Weekdays in Monday-first order, three or more in a row as "Monday through Friday"."""
    days = [d for d in _MONDAY_FIRST if bits >> d & 1]
    runs: list[list[int]] = []
    for day in days:
        if runs and _MONDAY_FIRST.index(day) == _MONDAY_FIRST.index(runs[-1][-1]) + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    pieces: list[str] = []
    for run in runs:
        if len(run) >= 3:
            pieces.append(f"{_DAY_NAMES[run[0]]} through {_DAY_NAMES[run[-1]]}")
        else:
            pieces.extend(_DAY_NAMES[d] for d in run)
    return pieces


def _day_of_week_phrase(expr: CronExpression) -> str:
    pieces = _weekday_runs(expr.day_of_week_bits)
    pieces += [f"the {_ORDINALS[k]} {_DAY_NAMES[w]} of the month" for w, k in expr.nth_weekdays]
    pieces += [f"the last {_DAY_NAMES[w]} of the month" for w in expr.last_weekdays]
    return "on " + _join(pieces)


def _needs_own_weekdays(expr: CronExpression) -> bool:
    weekdays = expr.fields[5]
    if weekdays == "*":
        return False
    day_of_month_set = expr.fields[3] != "*"
    special = bool(expr.nth_weekdays or expr.last_weekdays)
    if "/" in weekdays or (special and "," in weekdays):
        return True  # steps and mixed lists: cron-descriptor's own reading differs from ours
    # With the day of month set too, cron-descriptor says "or" where both must match, and
    # nothing ("on day 1 of the month, Monday through Friday") where either may.
    return day_of_month_set


@lru_cache(maxsize=1024)
def _describe(expression: str) -> str:
    expr = parse_cron(expression)  # validate first: cron-descriptor is lenient
    fields = [_SAME_ENDS_STEP.sub(r"\1", text) for text in expr.fields]
    if not _needs_own_weekdays(expr):
        text = " ".join(fields if expr.has_seconds else fields[1:])
        return str(ExpressionDescriptor(text, _options()).get_description())
    fields[5] = "*"
    text = " ".join(fields if expr.has_seconds else fields[1:])
    options = _options()
    descriptor = ExpressionDescriptor(text, options)
    if expr.fields[3] == "*":
        joiner = ", only "
    elif expr.days_match_either:
        joiner = ", or "
    else:
        joiner = ", but only "
    text = (
        descriptor.get_time_of_day_description()
        + descriptor.get_day_of_month_description()
        + joiner
        + _day_of_week_phrase(expr)
        + descriptor.get_month_description()
    )
    # The finishing touches cron-descriptor applies to its own full descriptions.
    text = descriptor.transform_verbosity(text, use_verbose_format=False)
    return str(ExpressionDescriptor.transform_case(text, options.casing_type))


def describe(expression: str) -> str:
    """A plain-English description, e.g. "At 09:00, Monday through Friday".

    Raises InvalidScheduleError for an invalid expression. Macros are described by what they
    stand for (``@daily`` is "At 00:00").
    """
    parse_cron(expression)  # type check and validation before the cache sees the argument
    return _describe(expression)
