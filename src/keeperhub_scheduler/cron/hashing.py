"""``H``: values hashed from a seed (the schedule's id), picked as cron-parser 5 picks them.

cron-parser replaces each ``H`` form with values drawn from a pseudo-random generator seeded by its
``hashSeed`` option: the 32-bit FNV-1a hash of the seed's UTF-16 code units starts a mulberry32
generator, which gives one number in [0, 1) per field, in the order second, minute, hour, month,
day of month, day of week. Every ``H`` of a field uses that field's number. We draw the same
numbers from the schedule's id, so a schedule's ``H`` always picks the same values (its place in
the spread), and KeeperHub, given the id as ``hashSeed``, would show the very same times.

The forms, for a field whose values run from ``low`` to ``high`` (a range ``(a-b)`` is first cut
down to the field's; nothing left is an error):

* ``H`` and ``H(a-b)``: one value, ``floor(r * size) + start``. A plain ``H`` in the day of month
  reaches at most the longest selected month, February counted as 28 days, so it always exists.
* ``H/n`` and ``H(a-b)/n``: every n-th value from an offset ``floor(r * n)`` past the multiple of n
  at or below the start; when that leaves nothing inside the range (n wider than the range), the
  one value ``H(a-b)`` would give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

_MASK: Final = 0xFFFFFFFF
_FNV_OFFSET: Final = 2166136261
_FNV_PRIME: Final = 16777619
_GOLDEN: Final = 0x6D2B79F5
# Where each of the generator's draws goes, by our field order (second, minute, hour, day of
# month, month, day of week): cron-parser draws for the month before the day of month.
_DRAW_ORDER: Final = (0, 1, 2, 4, 3, 5)


@dataclass(frozen=True)
class HashItem:
    """One ``H`` form as written: its range (None: the whole field), its step (None: one value)."""

    low: int | None = None
    high: int | None = None
    step: int | None = None


def _fnv1a(seed: str) -> int:
    value = _FNV_OFFSET
    data = seed.encode("utf-16-le")
    for i in range(0, len(data), 2):  # UTF-16 code units, as JavaScript strings hold them
        value = ((value ^ (data[i] | data[i + 1] << 8)) * _FNV_PRIME) & _MASK
    return value


def draws(seed: str) -> tuple[float, ...]:
    """The six numbers in [0, 1) that ``H`` uses, indexed by our field order."""
    state = _fnv1a(seed)
    ordered: list[float] = [0.0] * 6
    for index in _DRAW_ORDER:
        state += _GOLDEN
        t = state & _MASK
        t = ((t ^ (t >> 15)) * (t | 1)) & _MASK
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & _MASK)) & _MASK
        ordered[index] = ((t ^ (t >> 14)) & _MASK) / 4294967296
    return tuple(ordered)


def _one(draw: float, low: int, high: int) -> int:
    return math.floor(draw * (high - low + 1)) + low


def expand(item: HashItem, draw: float, low: int, high: int, plain_high: int) -> list[int]:
    """The values of one ``H`` item in a field of ``low``-``high``; ``plain_high`` caps a plain
    ``H`` (the day of month's longest selected month). The range was checked when parsing."""
    if item.low is not None and item.high is not None:
        low, high = max(item.low, low), min(item.high, high)
    elif item.step is None:
        high = plain_high
    if item.step is None:
        return [_one(draw, low, high)]
    step = item.step
    # The offset in floating point, as JavaScript computes it; a step too large for a double is
    # infinite there, and then (like a step wider than the range) leaves no value in the range.
    try:
        offset_float = draw * float(step)
    except OverflowError:
        offset_float = draw * math.inf  # NaN when the draw is 0, as in JavaScript
    if not math.isfinite(offset_float) or step > high:
        offset = math.floor(offset_float) if math.isfinite(offset_float) else high + 1
        found = [offset] if low <= offset <= high else []
    else:
        start = math.floor(low / step) * step + math.floor(offset_float)
        found = [value for value in range(start, high + 1, step) if value >= low]
    return found or [_one(draw, low, high)]
