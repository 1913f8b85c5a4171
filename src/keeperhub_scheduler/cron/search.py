"""Fire times: the search, and the note that explains a fire time shaped by a clock change.

The rules are written out in the package docstring (`keeperhub_scheduler.cron`). The search walks
the zone's segments (stretches of constant UTC offset, see `zones.py`) in time order. Inside a
segment local time is the instant plus a constant, so matching wall-clock times found in order
(`days.next_match`) give fire instants in order, and segments follow each other in real time:
the output is increasing by construction, with no sorting or buffering. At a segment's start:

* a gap (offset grows): a fixed-time job fires once, at the segment's start, if any wall-clock
  time in the skipped range matches; the wall-clock search then resumes one second later, so a
  match at the gap's end itself is not a second fire;
* a fold (offset shrinks): a fixed-time job skips the wall-clock times the previous segment
  already lived through (``Segment.seen_until``); any other job fires on them again.

When the next match is far beyond a segment, the search jumps close to it (`_resume_at`), so a
rare schedule does not walk, month by month, through years in which it cannot fire.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from keeperhub_scheduler.errors import InvalidScheduleError

from .days import DAY, next_match
from .expression import CronExpression
from .parse import parse_cron
from .zones import MAX_INSTANT, MIN_INSTANT, UNIX_EPOCH, ZoneTimeline, timeline_for

_ONE_SECOND = timedelta(seconds=1)
_SHOWN_SKIPPED = 3


def _instants(expr: CronExpression, timeline: ZoneTimeline, first: int) -> Iterator[int]:
    """Fire instants >= `first` (seconds since 1970), in increasing order."""
    instant = max(first, MIN_INSTANT)
    fixed = expr.is_fixed_time
    while instant < MAX_INSTANT:
        start, end, offset, before, seen_until = timeline.segment(instant)
        if fixed and instant == start and offset > before:
            # Entering a segment at a gap's end: one fire for every matching skipped time.
            skipped = next_match(expr, start + before)
            if skipped is not None and skipped < start + offset:
                yield start
                instant = start + 1
        low = instant + offset
        if fixed and seen_until > low:
            low = seen_until  # a fold's second pass: a fixed-time job already fired on it
        limit = end + offset
        while True:
            wall = next_match(expr, low)
            if wall is None:
                return  # nothing matches before year 9999 ends
            if wall >= limit:
                break
            yield wall - offset
            low = wall + 1
        instant = _resume_at(low, wall, offset, end, limit)


def _resume_at(low: int, wall: int, offset: int, end: int, limit: int) -> int:
    """Where to search after a segment in which nothing from wall-clock `low` on matched.

    Usually the next segment, at `end`. But when the next match `wall` is days away, every
    instant t in [end, wall - offset - 2 days) can be skipped, with the months between never
    probed. Offsets lie within (-24 h, 24 h), so two of them differ by under two days, hence:
    local(t) = t + offset(t) < wall, and when `low` is two days or more before this segment's
    local end, local(t) >= end + offset - 2 days >= low. So t shows a time in [low, wall), where
    nothing matches: no fire at t, and no gap ending at t skipped a matching time.
    """
    target = wall - offset - 2 * DAY
    if low <= limit - 2 * DAY and target > end:
        return target
    return end


def _first_instant(after: datetime) -> int:
    """The first whole second strictly after `after`."""
    if not isinstance(after, datetime):
        raise InvalidScheduleError("after must be a datetime", field="after")
    if after.tzinfo is None or after.utcoffset() is None:
        raise InvalidScheduleError("after must be timezone-aware (naive datetime)", field="after")
    return (after - UNIX_EPOCH) // _ONE_SECOND + 1


def _as_datetime(instant: int) -> datetime:
    return UNIX_EPOCH + timedelta(seconds=instant)


def iter_fire_times(
    expression: str, timezone: str, after: datetime, seed: str = ""
) -> Iterator[datetime]:
    """Fire times strictly after `after`, lazily and without end (until year 9999).

    Aware UTC datetimes, strictly increasing. The arguments are validated when this is called,
    not when the first value is taken. `seed` (the schedule's id) picks the values of ``H``.
    """
    expr = parse_cron(expression, seed)
    timeline = timeline_for(timezone)
    first = _first_instant(after)
    return (_as_datetime(instant) for instant in _instants(expr, timeline, first))


def next_fire_times(
    expression: str, timezone: str, after: datetime, count: int, seed: str = ""
) -> list[datetime]:
    """The first `count` fire times strictly after `after` (fewer only at year 9999)."""
    expr = parse_cron(expression, seed)
    timeline = timeline_for(timezone)
    first = _first_instant(after)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidScheduleError("count must be a whole number >= 0", field="count")
    found: list[datetime] = []
    if count == 0:
        return found
    for instant in _instants(expr, timeline, first):
        found.append(_as_datetime(instant))
        if len(found) == count:
            break
    return found


def _clock(expr: CronExpression, wall: int, fire_day: int) -> str:
    day, second_of_day = divmod(wall, DAY)
    hours, rest = divmod(second_of_day, 3600)
    text = f"{hours:02d}:{rest // 60:02d}"
    if expr.has_seconds:
        text += f":{rest % 60:02d}"
    if day != fire_day:
        text += f" on {(UNIX_EPOCH + timedelta(days=day)).date().isoformat()}"
    return text


def _gap_note(expr: CronExpression, start: int, offset: int, before: int) -> str | None:
    """The note for a fixed-time job's fire at the end of a gap, or None if none matched."""
    skipped: list[int] = []
    wall = next_match(expr, start + before)
    while wall is not None and wall < start + offset:
        skipped.append(wall)
        wall = next_match(expr, wall + 1)
    if not skipped:
        return None
    fire_day = (start + offset) // DAY
    shown = [_clock(expr, w, fire_day) for w in skipped[:_SHOWN_SKIPPED]]
    if len(skipped) > _SHOWN_SKIPPED:
        shown[-1] += f" and {len(skipped) - _SHOWN_SKIPPED} more"
    verb = "does" if len(skipped) == 1 else "do"
    return f"{', '.join(shown)} {verb} not exist (clocks jump forward); fired when the gap ended"


def dst_note(expression: str, timezone: str, fire: datetime, seed: str = "") -> str | None:
    """Why a fire time from `next_fire_times` is not an ordinary wall-clock match, if it is not.

    None for an ordinary match (and for an instant that is not a fire time of the expression);
    otherwise a short note: a skipped time fired at the end of a gap, or the first or second pass
    of a repeated time.
    """
    expr = parse_cron(expression, seed)
    timeline = timeline_for(timezone)
    instant = _first_instant(fire) - 1
    if not MIN_INSTANT <= instant < MAX_INSTANT:
        return None
    start, _end, offset, before, seen_until = timeline.segment(instant)
    if expr.is_fixed_time and instant == start and offset > before:
        note = _gap_note(expr, start, offset, before)
        if note is not None:
            return note
    wall = instant + offset
    if next_match(expr, wall) != wall:
        return None
    clock = _clock(expr, wall, wall // DAY)
    if wall < seen_until:
        return f"{clock} occurs twice (clocks go back); second pass"
    # A first pass when the next change, soon after, is a fold that repeats this time.
    upcoming = timeline.transitions(instant + 1, instant + 2 * DAY)
    if upcoming:
        change = upcoming[0]
        if change.offset_after < change.offset_before and wall >= change.at + change.offset_after:
            return f"{clock} occurs twice (clocks go back); first pass"
    return None
