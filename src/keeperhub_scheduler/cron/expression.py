"""The parsed form of a cron expression, and the tables that describe its fields.

Everything here is plain data: `parse.py` builds a `CronExpression`, `days.py` and `search.py` read
it. The day masks (one per month length and weekday of the 1st) are cached on the expression
itself, a dict inside a frozen dataclass, because every search asks the same few questions again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class FieldSpec:
    """One cron field: its error key, the words used in messages, its range and its names."""

    key: str  # the InvalidScheduleError field ("day_of_month")
    label: str  # how messages name it ("day of month")
    low: int
    high: int
    names: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))


_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

SECOND: Final = FieldSpec("second", "second", 0, 59)
MINUTE: Final = FieldSpec("minute", "minute", 0, 59)
HOUR: Final = FieldSpec("hour", "hour", 0, 23)
DAY_OF_MONTH: Final = FieldSpec("day_of_month", "day of month", 1, 31)
MONTH: Final = FieldSpec(
    "month", "month", 1, 12, MappingProxyType({n: i + 1 for i, n in enumerate(_MONTH_NAMES)})
)
# 0 and 7 are both Sunday; 7 is folded to 0 after expansion, so `5-7` means Fri, Sat, Sun.
DAY_OF_WEEK: Final = FieldSpec(
    "day_of_week", "day of week", 0, 7, MappingProxyType({n: i for i, n in enumerate(_DAY_NAMES)})
)

FIELDS_6: Final = (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)

MONTH_TITLES: Final = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# The longest each month can be (February: 29, in leap years).
MAX_MONTH_LENGTH: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class CronExpression:
    """A validated cron expression, expanded into the sets a search needs.

    ``fields`` holds the six field texts (seconds first, ``"0"`` for a 5-field expression, macros
    expanded) as written, upper-cased; ``describe()`` hands them to cron-descriptor. The value
    sets hold what ``H`` picked for the seed the expression was parsed with.
    """

    source: str
    fields: tuple[str, str, str, str, str, str]
    has_seconds: bool
    hashed: bool  # H is written somewhere: the values depend on the seed
    # Debian cron's rule: minute and hour fields both not starting with "*" (or "?", or "H/").
    is_fixed_time: bool
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    # Bit d-1 set when day d of the month is listed; `last_day_of_month` is the `L` item.
    day_of_month_bits: int
    last_day_of_month: bool
    # Bit w set when weekday w (0 = Sunday) is listed; `n#k` and `nL` items kept apart.
    day_of_week_bits: int
    nth_weekdays: tuple[tuple[int, int], ...]
    last_weekdays: tuple[int, ...]
    # cron-parser's rule: when neither day field is exactly "*" or "?", a day matches if either
    # does; otherwise it must match both.
    days_match_either: bool
    # Every matching time of day as hour * 60 + minute, sorted; searched with bisect.
    minutes_of_day: tuple[int, ...]
    _month_masks: dict[tuple[int, int], int] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    # The last answer of days.next_day as (asked, answer): every day in between has the same
    # answer. One tuple, replaced whole, so concurrent readers never see half of it.
    _next_day_memo: list[tuple[int, int]] = field(
        default_factory=lambda: [(1, 0)], compare=False, hash=False, repr=False
    )
