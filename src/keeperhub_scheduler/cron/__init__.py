"""Cron schedules: parsing, validation, descriptions, and fire times with an exact DST policy.

Public API: `next_fire_times`, `iter_fire_times`, `describe`, `validate_cron_expression`,
`validate_timezone`, `dst_note`, `parse_cron`, `uses_hash`, `CronExpression` and
`ENGINE_VERSION`. Every invalid input raises `InvalidScheduleError` with the field at fault.

Which expressions are valid, and which local wall-clock times match, is what cron-parser 5 says
(KeeperHub validates schedules and shows their next runs with it); the syntax is in `parse.py`'s
docstring, the deliberate differences in docs/schedules.md. ``H`` picks its values from a seed, the
schedule's id (`hashing.py`); the functions take it as ``seed`` and ignore it for expressions
without ``H``.

Fire times follow Debian cron's rules for clock changes, made precise as follows. A wall-clock
time is a local date and time of day (to the second) at which every field of the expression
matches, the day fields combined by cron-parser's rule (either may match when both are
restricted, i.e. neither is exactly ``*`` or ``?``).

* A job is *fixed-time* when its minute field and its hour field both do not start with ``*``
  (lists, ranges and ``a/n`` count as fixed). ``?`` counts as ``*``; ``H`` forms count by what
  they stand for: ``H`` and ``H(a-b)`` are one value (fixed), ``H/n`` is a step over the whole
  field like ``*/n`` (wildcard), ``H(a-b)/n`` is like ``a-b/n`` (fixed). The seconds field of a
  6-field expression plays no part: ``0 30 2 * * *`` behaves as ``30 2 * * *``, and
  ``*/10 30 2 * * *`` is fixed-time too. Every other job is a *wildcard* job. Macros count by
  what they expand to (``@hourly`` is wildcard, ``@daily`` is fixed-time).
* A wall-clock time that exists once fires at that instant, for every job.
* A wall-clock time that occurs twice (a fold, "clocks go back"): a fixed-time job fires at the
  first instant only; a wildcard job fires at both, in real-time order, so its fires from the
  first pass, then the second pass, interleave with nothing out of order.
* A wall-clock time that does not exist (a gap, "clocks jump forward"): a wildcard job does not
  fire for it. A fixed-time job fires at the instant the gap ends (the transition instant), and
  only when its day fields match the local date of the non-existent time; that instant may fall
  on the next calendar day (a gap at midnight, Pacific/Apia's skipped 2011-12-30). All matching
  times inside one gap make one fire. When the gap-end instant is also an ordinary match of the
  job (``0,30 2,3 * * *`` and a 02:00-03:00 gap: 02:00 and 02:30 skipped, 03:00 matches), that
  is still one fire, not two.
* Fire times are distinct instants, strictly increasing and strictly after ``after``, also when
  ``after`` lies inside a fold's second pass or exactly at a gap's end: the rules above define a
  set of instants and the search returns its members after ``after`` in order.
* Zones whose standard offset changes (not DST) follow the same rules: a gap is a gap and a
  repeat is a repeat, whatever their size (30 and 45 minutes on Lord Howe and Chatham, a whole
  day on Apia) and wherever they fall (also at local midnight). Unlike Debian cron there is no
  three-hour limit on the gap rule.
* Which times repeat or are skipped is read from `zoneinfo.ZoneInfo` (tzdata); "first pass" is
  ZoneInfo's fold=0. The sequence ends before 9999-12-30 UTC; `next_fire_times` returns fewer
  than `count` only there.
"""

from __future__ import annotations

from typing import Final

from .describe import describe
from .expression import CronExpression
from .parse import parse_cron, uses_hash, validate_cron_expression
from .search import dst_note, iter_fire_times, next_fire_times
from .zones import validate_timezone

# Which expressions this engine accepts, as a number: raise it whenever a change makes an
# expression valid that was not (or invalid that was). The dispatcher re-reads rows that an
# older engine parked as invalid (dispatcher/unpark.py). 1: before cron-parser parity; 2: since.
ENGINE_VERSION: Final = 2

__all__ = [
    "ENGINE_VERSION",
    "CronExpression",
    "describe",
    "dst_note",
    "iter_fire_times",
    "next_fire_times",
    "parse_cron",
    "uses_hash",
    "validate_cron_expression",
    "validate_timezone",
]
