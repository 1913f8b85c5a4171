"""One field of a cron expression: its list items, read as cron-parser 5 reads them.

The text comes upper-cased. An item is ``*`` or ``?`` (every value), optionally with a step
``/n``; a value ``a``, a range ``a-b``, ``a/n`` (``a`` to the field's maximum) or ``a-b/n``; any
step of 1 or more (``*/90`` in minutes is minute 0 only); names where the field has them. The day
of month also takes ``L``; the day of week ``nL`` (the last weekday n of the month) and ``n#k``
(the k-th weekday n), where n may be ``*`` or ``?`` (any weekday) or ``H``, and k is read as a
JavaScript number, as cron-parser reads it (``1#2.0`` is ``1#2``). Day of week 7 is Sunday.

``H`` forms stand alone as list items: ``H``, ``H/n``, ``H(a-b)``, ``H(a-b)/n``, and in the day of
week ``H#k`` and ``HL``. They are kept as `HashItem`s here and picked from the schedule's seed
later (`hashing.py`), so that parsing an expression never depends on the seed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, NoReturn

from keeperhub_scheduler.errors import InvalidScheduleError

from .expression import DAY_OF_MONTH, DAY_OF_WEEK, FieldSpec
from .hashing import HashItem

ITEM_HELP: Final = (
    "expected a number, a range a-b, a step */n, a-b/n or a/n, an H form, or a list of these"
)
_H_HELP: Final = "H stands alone as a list item: H, H/n, H(a-b) or H(a-b)/n"

_VALUE: Final = r"(?:[0-9]+|[A-Z]+)"
_ITEM: Final = re.compile(rf"(?P<start>[*?]|{_VALUE})(?:-(?P<end>{_VALUE}))?(?:/(?P<step>[0-9]+))?")
_HASH: Final = re.compile(r"H(?:\((?P<low>[0-9]+)-(?P<high>[0-9]+)\))?(?:/(?P<step>[0-9]+))?")
_HASH_LAST: Final = re.compile(r"H(?:\((?P<low>[0-9]+)-(?P<high>[0-9]+)\))?L")
_LAST_WEEKDAY: Final = re.compile(rf"(?P<day>{_VALUE})L")
# What JavaScript's Number() reads (the field has no spaces): decimals with an optional exponent,
# and 0x, 0o and 0b integers. The empty string is 0.
_JS_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:E[+-]?[0-9]+)?")
_JS_RADIX: Final = re.compile(r"0(?:X[0-9A-F]+|O[0-7]+|B[01]+)")
# An H of its own, not a letter of a name (THU): "1-H", "H5", "5/H" are H glued to other text.
_LONE_H: Final = re.compile(r"(?<![A-Z])H(?![A-Z])")
_RADIX: Final = {"X": 16, "O": 8, "B": 2}


def fail(message: str, spec: FieldSpec | None = None) -> NoReturn:
    raise InvalidScheduleError(message, field=spec.key if spec else "cron_expression")


def shorten(text: str, limit: int = 40) -> str:
    """Quote user text for a message, cut short so a long input cannot flood a log line."""
    return repr(cut(text, limit))


def cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class HashUse:
    """An ``H`` item of a field, and what its pick stands for in the day of week."""

    item: HashItem
    nth: int = 0  # H#k: the k-th occurrence of the picked weekday
    last: bool = False  # HL: the last picked weekday of the month


@dataclass
class FieldPlan:
    """What one field's items add up to before ``H`` is picked."""

    values: set[int]
    hashes: list[HashUse]
    last_day: bool = False
    nth: set[tuple[int, int]] | None = None
    last_weekdays: set[int] | None = None


def _value(text: str, spec: FieldSpec) -> int:
    """A number or a name, checked against the field's range."""
    if text[0].isdigit():
        number = int(text)  # ASCII digits only (the regexes)
        if not spec.low <= number <= spec.high:
            _out_of_range(text, spec)
        return number
    if text in spec.names:
        return spec.names[text]
    if text == "H":
        fail(f"{spec.label} H in a range or step: {_H_HELP}", spec)
    if text == "L":
        if spec is DAY_OF_MONTH:
            fail("day of month 'L' (the last day) must stand alone, not in a range or step", spec)
        if spec is DAY_OF_WEEK:
            fail("day of week 'L' must follow a weekday, e.g. 5L for the last Friday", spec)
        fail(f"'L' is not allowed in the {spec.label} field", spec)
    if spec.names:
        first, last = next(iter(spec.names)), list(spec.names)[-1]
        fail(f"{spec.label} {shorten(text)} is not a number or a name {first}-{last}", spec)
    fail(f"{spec.label} {shorten(text)} is not a number", spec)


def _out_of_range(text: str, spec: FieldSpec) -> NoReturn:
    fail(f"{spec.label} {text} is out of range {spec.low}-{spec.high}", spec)


def _step(text: str, spec: FieldSpec) -> int:
    step = int(text)
    if step < 1:
        fail(f"{spec.label} step {text} is out of range: a step is 1 or more", spec)
    return step


def _hash_item(match: re.Match[str], item: str, spec: FieldSpec) -> HashItem:
    low_text, high_text = match.group("low", "high")
    step_text = match.groupdict().get("step")
    step = _step(step_text, spec) if step_text else None
    if low_text is None or high_text is None:
        return HashItem(step=step)
    low, high = int(low_text), int(high_text)
    if low > high:
        fail(f"{spec.label} range {item} is reversed (the start is after the end)", spec)
    if high < spec.low or low > spec.high:
        fail(f"{spec.label} {item} has no value in the field's range {spec.low}-{spec.high}", spec)
    return HashItem(low, high, step)


def _range_item(item: str, field_text: str, spec: FieldSpec, out: FieldPlan) -> None:
    match = _ITEM.fullmatch(item)
    if match is None:
        if "#" in item:
            fail(f"'#' is only allowed in the day of week field, not in {spec.label}", spec)
        if _LONE_H.search(item):
            fail(f"{spec.label} {shorten(item)}: {_H_HELP}", spec)
        fail(f"{spec.label} field {shorten(field_text)} is not valid: {ITEM_HELP}", spec)
    start, end, step_text = match.group("start", "end", "step")
    step = _step(step_text, spec) if step_text else 1
    if start in ("*", "?"):
        if end is not None:
            fail(f"{spec.label} field {shorten(field_text)} is not valid: {ITEM_HELP}", spec)
        out.values.update(range(spec.low, spec.high + 1, step))
        return
    low = _value(start, spec)
    if end is None:
        # A lone value with a step runs to the field's maximum ("a/n").
        high = spec.high if step_text else low
    else:
        high = _value(end, spec)
        if high < low:
            fail(f"{spec.label} range {start}-{end} is reversed (the start is after the end)", spec)
    out.values.update(range(low, high + 1, step))


def _js_number(text: str) -> float | None:
    """What JavaScript's ``Number(text)`` gives for upper-cased text, None for NaN."""
    if not text:
        return 0.0
    if _JS_RADIX.fullmatch(text):
        return float(int(text[2:], _RADIX[text[1]]))
    if _JS_DECIMAL.fullmatch(text):
        return float(text)
    return math.inf if text.lstrip("+") == "INFINITY" else None


def _nth_item(item: str, spec: FieldSpec, out: FieldPlan) -> None:
    """``n#k``: n a weekday, ``*``, ``?`` or ``H``; k a JavaScript number equal to 1-5."""
    parts = item.split("#")
    if len(parts) != 2:
        fail(f"day of week {cut(item)} is not valid: expected n#k, the k-th weekday n", spec)
    day, k_text = parts
    k = _js_number(k_text)
    if k is None:
        fail(f"day of week {cut(item)}: occurrence {shorten(k_text)} is not a number", spec)
    if not 1 <= k <= 5:
        fail(f"day of week {cut(item)}: occurrence {cut(k_text)} is out of range 1-5", spec)
    if k != int(k):
        # cron-parser accepts it, and no day is ever the 2.5th of its weekday.
        fail(f"day of week {cut(item)}: occurrence {cut(k_text)} is not a whole number", spec)
    assert out.nth is not None
    if day in ("*", "?"):
        out.nth.update((weekday, int(k)) for weekday in range(7))
    elif day == "H":
        out.hashes.append(HashUse(HashItem(), nth=int(k)))
    elif re.fullmatch(_VALUE, day):
        out.nth.add((_value(day, spec) % 7, int(k)))
    else:
        fail(f"day of week {cut(item)}: '#' follows one weekday, *, ? or H", spec)


def _day_of_week_item(item: str, spec: FieldSpec, out: FieldPlan) -> bool:
    """Handle ``n#k``, ``nL`` and ``HL``; False when the item is an ordinary one."""
    if "#" in item:
        _nth_item(item, spec, out)
        return True
    if item == "L":
        fail("day of week 'L' must follow a weekday, e.g. 5L for the last Friday", spec)
    assert out.last_weekdays is not None
    hashed = _HASH_LAST.fullmatch(item)
    if hashed is not None:
        out.hashes.append(HashUse(_hash_item(hashed, item, spec), last=True))
        return True
    last = _LAST_WEEKDAY.fullmatch(item)
    if last is not None:
        out.last_weekdays.add(_value(last.group("day"), spec) % 7)
        return True
    return False


def parse_field(text: str, spec: FieldSpec) -> FieldPlan:
    """The field's values and ``H`` items; InvalidScheduleError naming the field otherwise."""
    out = FieldPlan(set(), [])
    if spec is DAY_OF_WEEK:
        out.nth, out.last_weekdays = set(), set()
    for item in text.split(","):
        if not item:
            fail(f"{spec.label} field {shorten(text)} has an empty list item", spec)
        hashed = _HASH.fullmatch(item)
        if hashed is not None:
            out.hashes.append(HashUse(_hash_item(hashed, item, spec)))
        elif spec is DAY_OF_MONTH and item == "L":
            out.last_day = True
        elif spec is DAY_OF_WEEK and _day_of_week_item(item, spec, out):
            pass
        else:
            _range_item(item, text, spec, out)
    if spec is DAY_OF_WEEK and 7 in out.values:
        out.values = (out.values - {7}) | {0}
    return out
