"""Time zones: validating names, and each zone's UTC offset as a list of constant stretches.

`ZoneInfo` answers "what is the offset at this instant" but does not list its transitions, and a
search wants the stretches between them: inside one, local time is UTC plus a constant, so a cron
search there is integer arithmetic with no per-step ZoneInfo call. The transitions of a year are
found once by asking ZoneInfo for the offset at every UTC midnight of the year and bisecting each
change down to the second. That is exact as long as two offset changes are never less than a day
apart; in tzdata 2025b the closest pair in any zone's whole history is four days apart (Freetown,
1939), and rule-based years have two changes months apart. A year's list is cached per zone.

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
    # The offset just before `start`: larger for a gap, smaller for a fold, equal at a year edge.
    offset_before: int
    # Wall-clock times below this were already lived through before `start` (a fold's second
    # pass); at most start + offset when there is no fold.
    seen_until: int


class Transition(NamedTuple):
    at: int
    offset_before: int
    offset_after: int


class _Year(NamedTuple):
    start: int
    end: int
    start_offset: int
    transitions: tuple[Transition, ...]
    times: tuple[int, ...]


def _year_start(year: int) -> int:
    # Year 10000 is asked for as the end of year 9999; datetime cannot build it, ordinals can.
    ordinal = date(year, 1, 1).toordinal() if year <= LAST_YEAR else date.max.toordinal() + 1
    return (ordinal - UNIX_ORDINAL) * DAY


def year_of(instant: int) -> int:
    return (UNIX_EPOCH + timedelta(days=instant // DAY)).year


class ZoneTimeline:
    """One zone's offsets, year by year, as constant segments between its transitions."""

    def __init__(self, zone: zoneinfo.ZoneInfo) -> None:
        self.zone = zone
        self._years: dict[int, _Year] = {}

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

    def _probe(self, year: int) -> _Year:
        start = max(_year_start(year), MIN_INSTANT)
        end = min(_year_start(year + 1), MAX_INSTANT)
        # One probe a day, plus the second before the year so a change at its very start counts.
        probes = [max(start - 1, MIN_INSTANT), *range(start, end, DAY), end - 1]
        found: list[Transition] = []
        previous, previous_offset = probes[0], self.offset(probes[0])
        for probe in probes[1:]:
            offset = self.offset(probe)
            if offset != previous_offset:
                at = self._find_change(previous, probe, previous_offset)
                if at >= start:
                    found.append(Transition(at, previous_offset, self.offset(at)))
            previous, previous_offset = probe, offset
        return _Year(start, end, self.offset(start), tuple(found), tuple(t.at for t in found))

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is None:
            cached = self._years[year] = self._probe(year)
        return cached

    def transitions(self, low: int, high: int) -> list[Transition]:
        """The offset changes at instants in [low, high)."""
        found: list[Transition] = []
        for year in range(year_of(max(low, MIN_INSTANT)), year_of(min(high, MAX_INSTANT)) + 1):
            found.extend(t for t in self._year(year).transitions if low <= t.at < high)
        return found

    def segment(self, instant: int) -> Segment:
        """The segment holding `instant` (MIN_INSTANT <= instant < MAX_INSTANT)."""
        year_number = year_of(instant)
        year = self._year(year_number)
        i = bisect_right(year.times, instant) - 1
        end = year.times[i + 1] if i + 1 < len(year.times) else year.end
        if i >= 0:
            at, before, offset = year.transitions[i]
            return Segment(at, end, offset, before, at + before)
        # A year edge, not a transition: a fold just before it may still reach past it.
        seen_until = year.start + year.start_offset
        previous = self._year(year_number - 1).transitions if year_number > 1 else ()
        if previous:
            seen_until = max(seen_until, previous[-1].at + previous[-1].offset_before)
        return Segment(year.start, end, year.start_offset, year.start_offset, seen_until)


@lru_cache(maxsize=1024)
def _timeline_cached(name: str) -> ZoneTimeline:
    return ZoneTimeline(validate_timezone(name))


def timeline_for(name: str) -> ZoneTimeline:
    """The timeline of a zone name, cached with its probed years; validates the name first."""
    if not isinstance(name, str):
        validate_timezone(name)  # raises the "must be a string" error
    return _timeline_cached(name)
