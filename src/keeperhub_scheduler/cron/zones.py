"""Time zones: validating names, and each zone's UTC offset as a list of constant stretches.

`ZoneInfo` answers "what is the offset at this instant" but does not list its transitions, and a
search wants the stretches between them: inside one, local time is UTC plus a constant, so a cron
search there is integer arithmetic with no per-step ZoneInfo call. Transitions are found a UTC
month at a time, when a search first needs that month, by asking ZoneInfo for the offset every
two days and bisecting each change down to the second. That is exact as long as two offset
changes are never less than two days apart; in tzdata 2025b the closest pair in any zone's whole
history is four days apart (Freetown, 1939), and rule-based years have two changes months apart.
`test_zones.py` compares the result with the stdlib's own reading of the tz files for every zone,
2000-2037. Each month's list is cached per zone.

Instants and wall-clock times are integer seconds since 1970-01-01 (see `days.py`).
"""

from __future__ import annotations

import re
import zoneinfo
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final, NamedTuple

from keeperhub_scheduler.errors import InvalidScheduleError

from .days import DAY, LAST_YEAR, UNIX_ORDINAL

_PROBE_STEP: Final = 2 * DAY

UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The engine works between these instants; local times stay inside datetime's years 1-9999.
MIN_INSTANT: Final = int((datetime(1, 1, 2, tzinfo=UTC) - UNIX_EPOCH).total_seconds())
MAX_INSTANT: Final = int((datetime(9999, 12, 30, tzinfo=UTC) - UNIX_EPOCH).total_seconds())

_ZONE_NAME: Final = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
# Present in the zone directory but meaning "whatever this machine is set to": never a schedule's.
_MACHINE_SPECIFIC: Final = frozenset({"localtime", "posixrules"})
_MAX_ZONE_NAME: Final = 64


def _unknown(name: str) -> InvalidScheduleError:
    shown = name if len(name) <= _MAX_ZONE_NAME else name[:_MAX_ZONE_NAME] + "..."
    return InvalidScheduleError(f"unknown time zone {shown!r}", field="timezone")


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # available_timezones() walks the zone directories: done once per process.
    return frozenset(zoneinfo.available_timezones()) - _MACHINE_SPECIFIC


def validate_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The ZoneInfo for an IANA zone name; InvalidScheduleError (field "timezone") otherwise.

    Only names in the tz database are accepted: no paths, no "localtime", nothing that depends on
    how this machine is configured.
    """
    if not isinstance(name, str):
        raise InvalidScheduleError(
            f"time zone must be a string, not {type(name).__name__}", field="timezone"
        )
    if not name.strip():
        raise InvalidScheduleError("time zone is empty", field="timezone")
    if len(name) > _MAX_ZONE_NAME or not _ZONE_NAME.fullmatch(name) or name not in _known_zones():
        raise _unknown(name)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise _unknown(name) from error


class Segment(NamedTuple):
    """A stretch [start, end) of instants with one UTC offset."""

    start: int
    end: int
    offset: int
    # The offset just before `start`: smaller at a gap, larger at a fold, equal at a month edge.
    offset_before: int
    # Wall-clock times below this were already lived through before `start` (a fold's second
    # pass); at most start + offset when there is no fold.
    seen_until: int


class Transition(NamedTuple):
    at: int
    offset_before: int
    offset_after: int


class _Month(NamedTuple):
    """The probed offsets of one calendar month (in UTC) of one zone."""

    start: int
    end: int
    start_offset: int
    transitions: tuple[Transition, ...]
    times: tuple[int, ...]


def month_of(instant: int) -> int:
    """The UTC calendar month holding `instant`, as year * 12 + month - 1."""
    day = (UNIX_EPOCH + timedelta(days=instant // DAY)).date()
    return day.year * 12 + day.month - 1


def _month_start(month: int) -> int:
    year, index = divmod(month, 12)
    # The month after December 9999 is asked for as its end; ordinals can say when that is.
    if year > LAST_YEAR:
        return (date.max.toordinal() + 1 - UNIX_ORDINAL) * DAY
    ordinal = date(year, index + 1, 1).toordinal()
    return (ordinal - UNIX_ORDINAL) * DAY


class ZoneTimeline:
    """One zone's offsets, month by month, as constant segments between its transitions.

    A month is probed when a search first needs it (about 16 ZoneInfo calls) and kept; a search
    that jumps over years without a match never probes them.
    """

    def __init__(self, zone: zoneinfo.ZoneInfo) -> None:
        self.zone = zone
        self._months: dict[int, _Month] = {}

    def offset(self, instant: int) -> int:
        delta = datetime.fromtimestamp(instant, self.zone).utcoffset()
        assert delta is not None  # a ZoneInfo always has an offset
        return int(delta.total_seconds())  # whole seconds in every TZif file

    def _find_change(self, low: int, high: int, offset_low: int) -> int:
        """The first instant in (low, high] whose offset differs from `offset_low`."""
        while high - low > 1:
            middle = (low + high) // 2
            if self.offset(middle) == offset_low:
                low = middle
            else:
                high = middle
        return high

    def _probe(self, month: int) -> _Month:
        start = max(_month_start(month), MIN_INSTANT)
        end = min(_month_start(month + 1), MAX_INSTANT)
        # A probe every two days, plus the second before the month so that a change at its very
        # start counts. Two probes with the same offset are taken to have no change between
        # them: offset changes are at least four days apart (see the module docstring).
        probes = [max(start - 1, MIN_INSTANT), *range(start, end, _PROBE_STEP), end - 1]
        found: list[Transition] = []
        previous, previous_offset = probes[0], self.offset(probes[0])
        for probe in probes[1:]:
            offset = self.offset(probe)
            if offset != previous_offset:
                at = self._find_change(previous, probe, previous_offset)
                if at >= start:
                    found.append(Transition(at, previous_offset, self.offset(at)))
            previous, previous_offset = probe, offset
        return _Month(start, end, self.offset(start), tuple(found), tuple(t.at for t in found))

    def _month(self, month: int) -> _Month:
        cached = self._months.get(month)
        if cached is None:
            cached = self._months[month] = self._probe(month)
        return cached

    def transitions(self, low: int, high: int) -> list[Transition]:
        """The offset changes at instants in [low, high)."""
        found: list[Transition] = []
        for month in range(month_of(max(low, MIN_INSTANT)), month_of(min(high, MAX_INSTANT)) + 1):
            found.extend(t for t in self._month(month).transitions if low <= t.at < high)
        return found

    def segment(self, instant: int) -> Segment:
        """The segment holding `instant` (MIN_INSTANT <= instant < MAX_INSTANT)."""
        number = month_of(instant)
        month = self._month(number)
        i = bisect_right(month.times, instant) - 1
        end = month.times[i + 1] if i + 1 < len(month.times) else month.end
        if i >= 0:
            at, before, offset = month.transitions[i]
            return Segment(at, end, offset, before, at + before)
        # A month edge, not a transition: a fold just before it may still reach past it.
        seen_until = month.start + month.start_offset
        if month.start > MIN_INSTANT:
            previous = self._month(number - 1).transitions
            if previous:
                seen_until = max(seen_until, previous[-1].at + previous[-1].offset_before)
        return Segment(month.start, end, month.start_offset, month.start_offset, seen_until)


@lru_cache(maxsize=1024)
def _timeline_cached(name: str) -> ZoneTimeline:
    return ZoneTimeline(validate_timezone(name))


def timeline_for(name: str) -> ZoneTimeline:
    """The timeline of a zone name, cached with its probed years; validates the name first."""
    if not isinstance(name, str):
        validate_timezone(name)  # raises the "must be a string" error
    return _timeline_cached(name)
