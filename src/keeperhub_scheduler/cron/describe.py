"""Plain-English descriptions of cron expressions, by cron-descriptor.

cron-descriptor reads most expressions the way we do, and its wording is kept for them ("At 09:00,
Monday through Friday"). Where it would read a field otherwise, the field is rewritten first:
``?`` becomes ``*``; a field with ``H`` is written as the values the seed picked (``H H * * *`` is
"At 06:08" for one schedule), an ``H/n`` as its first pick and ``/n``; a step wider than half its
field ("every 90 minutes" for ``*/90``, which is minute 0) as the values it gives. Its
day-of-week text is wrong for a few more: steps ("1/2" becomes "every 2 days of the week" instead of
Monday, Wednesday, Friday and Sunday), lists that mix ``n#k`` or ``nL`` with other days, and the
joining word when both day fields are set (it says nothing, "on day 1 of the month, Monday
through Friday", where either may match). For those the day-of-week phrase is written here from
the parsed expression and placed where cron-descriptor puts its own.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from cron_descriptor import ExpressionDescriptor, Options

from .expression import DAY_OF_WEEK, FIELDS_6, CronExpression, FieldSpec
from .parse import parse_cron

# "a-a/n" is the single value a; cron-descriptor would read it as "every n, a through a".
_SAME_ENDS_STEP: Final = re.compile(r"(?<![0-9A-Z])([0-9A-Z]+)-\1/[0-9]+")
_QUESTION: Final = re.compile(r"(^|,)\?")
_STEP: Final = re.compile(r"/([0-9]+)")
_HASH_ITEM: Final = re.compile(r"(?<![A-Z])H(?![A-KM-Z])")  # not THU; HL counts
_HASH_STEP: Final = re.compile(r"H(?:\([0-9]+-[0-9]+\))?/([0-9]+)")
_WILDCARDS: Final = ("*", "?")
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


def _nth_pieces(expr: CronExpression) -> list[str]:
    """``n#k`` items; ``*#k`` (every weekday's k-th) as the days of the month it means."""
    pieces = []
    for k in sorted({k for _, k in expr.nth_weekdays}):
        weekdays = [w for w, kk in expr.nth_weekdays if kk == k]
        if len(weekdays) == 7:
            pieces.append(f"days {7 * k - 6} through {min(7 * k, 31)} of the month")
        else:
            pieces += [f"the {_ORDINALS[k]} {_DAY_NAMES[w]} of the month" for w in weekdays]
    return pieces


def _day_of_week_phrase(expr: CronExpression) -> str:
    pieces = _weekday_runs(expr.day_of_week_bits) + _nth_pieces(expr)
    pieces += [f"the last {_DAY_NAMES[w]} of the month" for w in expr.last_weekdays]
    return "on " + _join(pieces)


def _needs_own_weekdays(expr: CronExpression) -> bool:
    weekdays = expr.fields[5]
    if weekdays in _WILDCARDS:
        return False
    day_of_month_set = expr.fields[3] not in _WILDCARDS
    special = bool(expr.nth_weekdays or expr.last_weekdays)
    if "/" in weekdays or _HASH_ITEM.search(weekdays) or weekdays.startswith(("*#", "?#")):
        return True  # steps, H and *#k: cron-descriptor's own reading differs from ours
    if special and "," in weekdays:
        return True  # mixed lists
    # With the day of month set too, cron-descriptor says "or" where both must match, and
    # nothing ("on day 1 of the month, Monday through Friday") where either may.
    return day_of_month_set


def _values(expr: CronExpression, index: int) -> list[int]:
    if index == 3:
        return [d for d in range(1, 32) if expr.day_of_month_bits >> (d - 1) & 1]
    return list((expr.seconds, expr.minutes, expr.hours, (), expr.months)[index])


def _compact(values: list[int]) -> str:
    """Values as a list, three or more in a row as a range: 1,2,3,7 is 1-3,7."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)) for run in runs
    )


def _plain(expr: CronExpression, index: int, text: str, spec: FieldSpec) -> str:
    """The field as cron-descriptor reads it right: ``?`` as ``*``, ``H`` and wide steps as the
    values they give (the day of week has its own phrase)."""
    text = _QUESTION.sub(r"\1*", text)
    span = spec.high - spec.low + 1
    hashed = bool(_HASH_ITEM.search(text))
    wide = any(int(step) > span // 2 for step in _STEP.findall(text))
    if spec is DAY_OF_WEEK or not (hashed or wide):
        return text
    values = _values(expr, index)
    step = _HASH_STEP.fullmatch(text)
    if step is not None and len(values) >= 2:
        n = int(step.group(1))
        return f"{values[0]}/{n}" if values[-1] + n > spec.high else f"{values[0]}-{values[-1]}/{n}"
    listed = _compact(values)
    if index == 3 and expr.last_day_of_month:
        listed = f"{listed},L" if listed else "L"
    return listed


@lru_cache(maxsize=1024)
def _describe(expression: str, seed: str) -> str:
    expr = parse_cron(expression, seed)  # validate first: cron-descriptor is lenient
    fields = [
        _plain(expr, index, _SAME_ENDS_STEP.sub(r"\1", text), spec)
        for index, (text, spec) in enumerate(zip(expr.fields, FIELDS_6, strict=True))
    ]
    if not _needs_own_weekdays(expr):
        text = " ".join(fields if expr.has_seconds else fields[1:])
        return str(ExpressionDescriptor(text, _options()).get_description())
    fields[5] = "*"
    text = " ".join(fields if expr.has_seconds else fields[1:])
    options = _options()
    descriptor = ExpressionDescriptor(text, options)
    # Here the day of week is restricted: with a restricted day of month too, either matches.
    joiner = ", or " if expr.days_match_either else ", only "
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


def describe(expression: str, seed: str = "") -> str:
    """A plain-English description, e.g. "At 09:00, Monday through Friday".

    Raises InvalidScheduleError for an invalid expression. Macros are described by what they
    stand for (``@daily`` is "At 00:00"), ``H`` by what it picks for ``seed`` (the schedule's id).
    """
    expr = parse_cron(expression, seed)  # type check and validation before the cache sees it
    return _describe(expression, seed if expr.hashed else "")
