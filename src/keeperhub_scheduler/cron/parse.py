"""Parse and validate cron expressions.

Grammar (case-insensitive; fields separated by spaces or tabs):

* 5 fields ``minute hour day-of-month month day-of-week`` or 6 with a leading ``second`` field;
  or one macro: ``@hourly @daily @midnight @weekly @monthly @yearly @annually``.
* A field is a comma-separated list of items: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` and ``a/n``
  (``a`` to the field's maximum, step ``n``). ``a-a/n`` is the single value ``a``.
* Month names JAN-DEC and weekday names SUN-SAT wherever a number may stand in those fields.
  Day of week is 0-7; 0 and 7 are Sunday (so ``1/2`` is Mon, Wed, Fri, Sun).
* Day of month also takes ``L`` (last day); day of week also takes ``n#k`` (k-th weekday n of the
  month, k 1-5) and ``nL`` (last weekday n of the month).
* A step may be at most the number of values in its field (``*/60`` is fine for minutes).

Everything else is rejected with an `InvalidScheduleError` whose message names the field and the
problem. Only ASCII is accepted: ``str.isdigit`` would let Arabic-Indic and other Unicode digits
through, so digits are matched as ``[0-9]`` and non-ASCII text is refused before anything else.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NoReturn

from keeperhub_scheduler.errors import InvalidScheduleError

from .days import day_fields_ever_match
from .expression import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    FIELDS_6,
    MONTH_TITLES,
    CronExpression,
    FieldSpec,
)

MAX_EXPRESSION_LENGTH: Final = 256

MACROS: Final = {
    "@HOURLY": "0 * * * *",
    "@DAILY": "0 0 * * *",
    "@MIDNIGHT": "0 0 * * *",
    "@WEEKLY": "0 0 * * 0",
    "@MONTHLY": "0 0 1 * *",
    "@YEARLY": "0 0 1 1 *",
    "@ANNUALLY": "0 0 1 1 *",
}

_FIELD_COUNT_HELP: Final = (
    "expected 5 (minute hour day-of-month month day-of-week) "
    "or 6 (second minute hour day-of-month month day-of-week)"
)
_ITEM_HELP: Final = "expected a number, a range a-b, a step */n, a-b/n or a/n, or a list of these"

_VALUE: Final = r"(?:[0-9]+|[A-Z]+)"
_ITEM: Final = re.compile(rf"(?P<start>\*|{_VALUE})(?:-(?P<end>{_VALUE}))?(?:/(?P<step>[0-9]+))?")
_NTH: Final = re.compile(rf"(?P<day>{_VALUE})#(?P<nth>[0-9]+)")
_FIELD_SPLIT: Final = re.compile(r"[ \t]+")


def _fail(message: str, spec: FieldSpec | None = None) -> NoReturn:
    raise InvalidScheduleError(message, field=spec.key if spec else "cron_expression")


def _shorten(text: str, limit: int = 40) -> str:
    """Quote user text for a message, cut short so a long input cannot flood a log line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class _FieldValues:
    """What one field's items add up to, before it is frozen into the CronExpression."""

    def __init__(self) -> None:
        self.values: set[int] = set()
        self.last_day = False
        self.nth: set[tuple[int, int]] = set()
        self.last_weekdays: set[int] = set()


def _value(text: str, spec: FieldSpec) -> int:
    """A number or a name, checked against the field's range."""
    if text[0].isdigit():
        number = int(text)  # ASCII digits only (the regexes), at most 256 of them
        if not spec.low <= number <= spec.high:
            _fail(f"{spec.label} {text} is out of range {spec.low}-{spec.high}", spec)
        return number
    if text in spec.names:
        return spec.names[text]
    if text == "L":
        if spec is DAY_OF_MONTH:
            _fail("day of month 'L' (the last day) must stand alone, not in a range or step", spec)
        if spec is DAY_OF_WEEK:
            _fail("day of week 'L' must follow a weekday, e.g. 5L for the last Friday", spec)
        _fail(f"'L' is not allowed in the {spec.label} field", spec)
    if spec.names:
        first, last = next(iter(spec.names)), list(spec.names)[-1]
        _fail(f"{spec.label} {_shorten(text)} is not a number or a name {first}-{last}", spec)
    _fail(f"{spec.label} {_shorten(text)} is not a number", spec)


def _step(text: str, spec: FieldSpec) -> int:
    step, span = int(text), spec.high - spec.low + 1
    if not 1 <= step <= span:
        _fail(f"{spec.label} step {text} is out of range 1-{span}", spec)
    return step


def _range_item(item: str, field_text: str, spec: FieldSpec, out: _FieldValues) -> None:
    match = _ITEM.fullmatch(item)
    if match is None:
        if "#" in item:
            _fail(f"'#' is only allowed in the day of week field, not in {spec.label}", spec)
        _fail(f"{spec.label} field {_shorten(field_text)} is not valid: {_ITEM_HELP}", spec)
    start, end, step_text = match.group("start", "end", "step")
    step = _step(step_text, spec) if step_text else 1
    if start == "*":
        if end is not None:
            _fail(f"{spec.label} field {_shorten(field_text)} is not valid: {_ITEM_HELP}", spec)
        out.values.update(range(spec.low, spec.high + 1, step))
        return
    low = _value(start, spec)
    if end is None:
        # A lone value with a step runs to the field's maximum (cronie's "a/n" extension).
        high = spec.high if step_text else low
    else:
        high = _value(end, spec)
        if high < low:
            _fail(
                f"{spec.label} range {start}-{end} is reversed (the start is after the end)", spec
            )
    out.values.update(range(low, high + 1, step))


def _day_of_week_item(item: str, spec: FieldSpec, out: _FieldValues) -> bool:
    """Handle ``n#k`` and ``nL``; False when the item is an ordinary one."""
    nth = _NTH.fullmatch(item)
    if nth is not None:
        weekday = _value(nth.group("day"), spec) % 7
        k = int(nth.group("nth"))
        if not 1 <= k <= 5:
            _fail(f"day of week {item}: occurrence {nth.group('nth')} is out of range 1-5", spec)
        out.nth.add((weekday, k))
        return True
    if item == "L":
        _fail("day of week 'L' must follow a weekday, e.g. 5L for the last Friday", spec)
    if item.endswith("L") and re.fullmatch(_VALUE, item[:-1]):
        out.last_weekdays.add(_value(item[:-1], spec) % 7)
        return True
    return False


def _parse_field(text: str, spec: FieldSpec) -> _FieldValues:
    out = _FieldValues()
    for item in text.split(","):
        if not item:
            _fail(f"{spec.label} field {_shorten(text)} has an empty list item", spec)
        if spec is DAY_OF_MONTH and item == "L":
            out.last_day = True
        elif spec is DAY_OF_WEEK and _day_of_week_item(item, spec, out):
            pass
        else:
            _range_item(item, text, spec, out)
    if spec is DAY_OF_WEEK and 7 in out.values:
        out.values = (out.values - {7}) | {0}
    return out


def _split(expression: str) -> tuple[list[str], bool]:
    """The six field texts, seconds first ("0" when absent), upper-cased, macros expanded;
    and whether the expression wrote its own seconds field."""
    text = expression.strip(" \t\r\n")
    if not text:
        _fail("cron expression is empty")
    parts = _FIELD_SPLIT.split(text)
    if parts[0].startswith("@"):
        macro = parts[0].upper() if parts[0].isascii() else parts[0]
        if macro not in MACROS:
            names = ", ".join(m.lower() for m in MACROS)
            _fail(f"unknown macro {_shorten(parts[0])}; expected one of {names}")
        if len(parts) > 1:
            _fail(f"the macro {parts[0]} must stand alone")
        parts = MACROS[macro].split()
    if len(parts) not in (5, 6):
        fields = "1 field" if len(parts) == 1 else f"{len(parts)} fields"
        _fail(f"cron expression has {fields}; {_FIELD_COUNT_HELP}")
    texts = parts if len(parts) == 6 else ["0", *parts]
    for part, spec in zip(texts, FIELDS_6, strict=True):
        if not part.isascii():
            bad = next(ch for ch in part if not ch.isascii())
            _fail(f"{spec.label} {_shorten(part)} contains {bad!r}; only ASCII is allowed", spec)
    return [part.upper() for part in texts], len(parts) == 6


def _check_days_exist(day_text: str, month_values: set[int], expr: CronExpression) -> None:
    """Reject day fields that no selected month can ever satisfy (``0 0 30 2 *``)."""
    if day_fields_ever_match(expr):
        return
    months = [MONTH_TITLES[m] for m in sorted(month_values)]
    if len(months) == 12:
        where = "any month"
    elif len(months) == 1:
        where = months[0]
    else:
        where = ", ".join(months[:-1]) + " or " + months[-1]
    # With "*" in day of week every weekday matches, so the day of month alone is at fault.
    if not expr.days_match_either and expr.day_of_week_bits == 0x7F:
        _fail(f"day of month {day_text} never occurs in {where}", DAY_OF_MONTH)
    _fail(
        f"day of month {day_text} and day of week {expr.fields[5]} never fall on the same day"
        f" in {where}",
        DAY_OF_MONTH,
    )


def _build(source: str, texts: list[str], has_seconds: bool) -> CronExpression:
    parsed = [_parse_field(text, spec) for text, spec in zip(texts, FIELDS_6, strict=True)]
    second, minute, hour, dom, month, dow = parsed
    dom_bits = sum(1 << (d - 1) for d in dom.values)
    dow_bits = sum(1 << w for w in dow.values)
    # A dow field of only n#k / nL items has no plain weekdays: dow_bits stays 0, as it should.
    expr = CronExpression(
        source=source,
        fields=(texts[0], texts[1], texts[2], texts[3], texts[4], texts[5]),
        has_seconds=has_seconds,
        is_fixed_time=not texts[1].startswith("*") and not texts[2].startswith("*"),
        seconds=tuple(sorted(second.values)),
        minutes=tuple(sorted(minute.values)),
        hours=tuple(sorted(hour.values)),
        months=tuple(sorted(month.values)),
        day_of_month_bits=dom_bits,
        last_day_of_month=dom.last_day,
        day_of_week_bits=dow_bits,
        nth_weekdays=tuple(sorted(dow.nth)),
        last_weekdays=tuple(sorted(dow.last_weekdays)),
        days_match_either=not texts[3].startswith("*") and not texts[5].startswith("*"),
        minutes_of_day=tuple(
            h * 60 + m for h in sorted(hour.values) for m in sorted(minute.values)
        ),
    )
    _check_days_exist(texts[3], month.values, expr)
    return expr


@lru_cache(maxsize=4096)
def _parse_cached(expression: str) -> CronExpression:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        _fail(
            f"cron expression is too long ({len(expression)} characters;"
            f" at most {MAX_EXPRESSION_LENGTH})"
        )
    return _build(expression, *_split(expression))


def parse_cron(expression: str) -> CronExpression:
    """Parse a cron expression (cached); raise InvalidScheduleError when it is not valid."""
    if not isinstance(expression, str):
        _fail(f"cron expression must be a string, not {type(expression).__name__}")
    return _parse_cached(expression)


def validate_cron_expression(expression: str) -> None:
    """Raise InvalidScheduleError when ``expression`` is not a valid cron expression."""
    parse_cron(expression)
