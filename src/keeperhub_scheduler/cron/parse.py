"""Parse and validate cron expressions, as cron-parser 5 (KeeperHub's parser) reads them.

Grammar (letters in any case; fields separated by whitespace, as JavaScript's ``\\s`` knows it):

* 5 fields ``minute hour day-of-month month day-of-week`` or 6 with a leading ``second`` field;
  or one predefined expression: ``@yearly @annually @monthly @weekly @daily @hourly @minutely
  @secondly @weekdays @weekends``, and ``@midnight`` (Vixie cron's, same as ``@daily``).
* Each field is a list of items (``fields.py``): ``*``, ``?``, values, names, ranges, any step of
  1 or more, ``L``, ``nL``, ``n#k`` and the ``H`` forms.
* The day fields: when both are restricted (neither is exactly ``*`` or ``?``), a day matches when
  either does; otherwise both must (``0 0 */15 1 MON-FRI`` is every weekday of January and the
  1st, 16th and 31st).

Where we differ from cron-parser on purpose (docs/schedules.md, "Compatibility"): we
refuse the empty expression and fewer than 5 fields (cron-parser fills them in: ``0 9 * *`` would
fire every minute from 00:00 to 00:59 on the 9th), expressions that never fire, and ``H`` glued to
other text; we accept repeated values (``1-5,3``), ``n#k`` in a list, letters in any case and
``@midnight``. Only ASCII is accepted outside the whitespace between fields.

Parsing has two steps, so that the seed matters only where ``H`` is written: `_compile` (cached per
expression) checks everything that does not depend on it; `_resolve` (cached per expression and
seed, the seed "" for an expression without ``H``) picks the ``H`` values and checks that some day
of the selected months can match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from .days import day_fields_ever_match
from .expression import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    FIELDS_6,
    MAX_MONTH_LENGTH,
    MONTH_TITLES,
    CronExpression,
)
from .fields import FieldPlan, fail, parse_field, shorten
from .hashing import draws, expand

# cron-parser's own limit: every value of every field listed needs about half of it.
MAX_EXPRESSION_LENGTH: Final = 1024

MACROS: Final = {
    "@YEARLY": "0 0 1 1 *",
    "@ANNUALLY": "0 0 1 1 *",
    "@MONTHLY": "0 0 1 * *",
    "@WEEKLY": "0 0 * * 0",
    "@DAILY": "0 0 * * *",
    "@MIDNIGHT": "0 0 * * *",
    "@HOURLY": "0 * * * *",
    "@MINUTELY": "* * * * *",
    "@SECONDLY": "* * * * * *",
    "@WEEKDAYS": "0 0 * * 1-5",
    "@WEEKENDS": "0 0 * * 0,6",
}

_FIELD_COUNT_HELP: Final = (
    "expected 5 (minute hour day-of-month month day-of-week) "
    "or 6 (second minute hour day-of-month month day-of-week)"
)
# JavaScript's whitespace (what cron-parser's trim() and split(/\s+/) see).
_SPACE: Final = "\t\n\x0b\x0c\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_FIELD_SPLIT: Final = re.compile(f"[{_SPACE}]+")
_EDGE_SPACE: Final = re.compile(f"^[{_SPACE}]+|[{_SPACE}]+$")
# The fields as cron-parser draws their H numbers: months before the day of month (plain H there
# reaches only as far as the longest selected month).
_RESOLVE_ORDER: Final = (0, 1, 2, 4, 3, 5)
_WILDCARDS: Final = ("*", "?")


@dataclass(frozen=True)
class _Compiled:
    """An expression checked up to its ``H`` picks: field texts and what each field holds."""

    texts: tuple[str, str, str, str, str, str]
    has_seconds: bool
    plans: tuple[FieldPlan, ...]
    hashed: bool


def _split(expression: str) -> tuple[list[str], bool]:
    """The six field texts, seconds first ("0" when absent), upper-cased, macros expanded;
    and whether the expression wrote its own seconds field."""
    text = _EDGE_SPACE.sub("", expression)
    if not text:
        fail("cron expression is empty")
    parts = _FIELD_SPLIT.split(text)
    if parts[0].startswith("@"):
        macro = parts[0].upper() if parts[0].isascii() else parts[0]
        if macro not in MACROS:
            names = ", ".join(m.lower() for m in MACROS)
            fail(f"unknown macro {shorten(parts[0])}; expected one of {names}")
        if len(parts) > 1:
            fail(f"the macro {parts[0]} must stand alone")
        parts = MACROS[macro].split()
    if len(parts) not in (5, 6):
        fields = "1 field" if len(parts) == 1 else f"{len(parts)} fields"
        fail(f"cron expression has {fields}; {_FIELD_COUNT_HELP}")
    texts = parts if len(parts) == 6 else ["0", *parts]
    for part, spec in zip(texts, FIELDS_6, strict=True):
        if not part.isascii():
            bad = next(ch for ch in part if not ch.isascii())
            fail(f"{spec.label} {shorten(part)} contains {bad!r}; only ASCII is allowed", spec)
    return [part.upper() for part in texts], len(parts) == 6


@lru_cache(maxsize=4096)
def _compile(expression: str) -> _Compiled:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        fail(
            f"cron expression is too long ({len(expression)} characters;"
            f" at most {MAX_EXPRESSION_LENGTH})"
        )
    texts, has_seconds = _split(expression)
    plans = tuple(parse_field(text, spec) for text, spec in zip(texts, FIELDS_6, strict=True))
    return _Compiled(
        texts=(texts[0], texts[1], texts[2], texts[3], texts[4], texts[5]),
        has_seconds=has_seconds,
        plans=plans,
        hashed=any(plan.hashes for plan in plans),
    )


def _is_wildcard_like(text: str) -> bool:
    """Debian cron's "starts with *" for the DST rule; ``?`` is ``*``, and ``H/n`` steps over the
    whole field as ``*/n`` does (``H`` and ``H(a-b)`` are one value, ``H(a-b)/n`` is ``a-b/n``)."""
    return text.startswith(("*", "?", "H/"))


def _picked(compiled: _Compiled, seed: str) -> list[FieldPlan]:
    """Each field's plan with its ``H`` items replaced by the values the seed picks."""
    numbers = draws(seed) if compiled.hashed else (0.0,) * 6
    resolved = list(compiled.plans)
    for index in _RESOLVE_ORDER:
        plan, spec = compiled.plans[index], FIELDS_6[index]
        if not plan.hashes:
            continue
        values, nth = set(plan.values), set(plan.nth or ())
        last_weekdays = set(plan.last_weekdays or ())
        plain_high = spec.high
        if spec is DAY_OF_MONTH:
            months = resolved[4].values
            plain_high = max(28 if m == 2 else MAX_MONTH_LENGTH[m] for m in months)
        for use in plan.hashes:
            picks = expand(use.item, numbers[index], spec.low, spec.high, plain_high)
            if spec is DAY_OF_WEEK:
                picks = [pick % 7 for pick in picks]
            if use.nth:
                nth.update((pick, use.nth) for pick in picks)
            elif use.last:
                last_weekdays.update(picks)
            else:
                values.update(picks)
        resolved[index] = FieldPlan(values, [], plan.last_day, nth, last_weekdays)
    return resolved


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
    picked = " (as H picks it for this schedule)" if "H" in day_text else ""
    fail(f"day of month {day_text}{picked} never occurs in {where}", DAY_OF_MONTH)


def _resolve(source: str, compiled: _Compiled, seed: str) -> CronExpression:
    second, minute, hour, dom, month, dow = _picked(compiled, seed)
    texts = compiled.texts
    expr = CronExpression(
        source=source,
        fields=texts,
        has_seconds=compiled.has_seconds,
        hashed=compiled.hashed,
        is_fixed_time=not _is_wildcard_like(texts[1]) and not _is_wildcard_like(texts[2]),
        seconds=tuple(sorted(second.values)),
        minutes=tuple(sorted(minute.values)),
        hours=tuple(sorted(hour.values)),
        months=tuple(sorted(month.values)),
        day_of_month_bits=sum(1 << (d - 1) for d in dom.values),
        last_day_of_month=dom.last_day,
        # A dow field of only n#k / nL items has no plain weekdays: the bits stay 0, as they should.
        day_of_week_bits=sum(1 << w for w in dow.values),
        nth_weekdays=tuple(sorted(dow.nth or ())),
        last_weekdays=tuple(sorted(dow.last_weekdays or ())),
        days_match_either=texts[3] not in _WILDCARDS and texts[5] not in _WILDCARDS,
        minutes_of_day=tuple(
            h * 60 + m for h in sorted(hour.values) for m in sorted(minute.values)
        ),
    )
    _check_days_exist(texts[3], month.values, expr)
    return expr


@lru_cache(maxsize=4096)
def _resolve_cached(expression: str, seed: str) -> CronExpression:
    return _resolve(expression, _compile(expression), seed)


def parse_cron(expression: str, seed: str = "") -> CronExpression:
    """Parse a cron expression (cached); raise InvalidScheduleError when it is not valid.

    ``seed`` (the schedule's id) picks the values of ``H``; an expression without ``H`` gives the
    same (cached) answer whatever the seed.
    """
    if not isinstance(expression, str):
        fail(f"cron expression must be a string, not {type(expression).__name__}")
    if not isinstance(seed, str):
        fail(f"the seed of H must be a string, not {type(seed).__name__}")
    compiled = _compile(expression)
    return _resolve_cached(expression, seed if compiled.hashed else "")


def uses_hash(expression: str) -> bool:
    """True when the expression writes ``H`` (its fire times then depend on the seed)."""
    if not isinstance(expression, str):
        fail(f"cron expression must be a string, not {type(expression).__name__}")
    return _compile(expression).hashed


def validate_cron_expression(expression: str, seed: str = "") -> None:
    """Raise InvalidScheduleError when ``expression`` is not a valid cron expression."""
    parse_cron(expression, seed)
