"""The DST corpus: every offset change of every zone, many jobs, many starting points.

For each change (from `transitions.py`) the jobs are built around the times it touches: fixed-time
jobs at the first, middle and last skipped or repeated minute, a list/range job, 6-field jobs,
day-restricted jobs whose day is and is not the day of the change, wildcard jobs, and
cron-parser's forms (``?``, both day fields restricted, ``H`` ranges and steps). Each job is
asked for its first few fires from starting points before, inside and after the change (inside
the second pass of a fold, exactly at a gap's end, half a second before it). The engine's answer
is compared with the brute-force reference (`reference.py`).

The reference is run once per job over windows of instants that cover every starting point plus
enough time for the fires asked for, and each window's answers are only used where they are
complete: a fire in (start, window end] comes from a wall-clock time that some instant of the
window shows, or from a time skipped by a gap that ends inside the window (`_wall_ranges`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from keeperhub_scheduler.cron import next_fire_times

from .reference import fires_in_walls, parse_reference
from .transitions import Change, zone_changes

FIXED_FIRES = 3
WILDCARD_FIRES = 6


@dataclass(frozen=True)
class Job:
    expression: str
    fires: int  # how many fires to compare from each start
    span: timedelta  # a window this long after a start holds at least `fires` fires


def _weekday(moment: datetime) -> int:
    return (moment.weekday() + 1) % 7  # cron numbering, 0 = Sunday


def jobs_for(change: Change) -> list[Job]:
    naive_at = change.at.replace(tzinfo=None)
    first = naive_at + min(change.before, change.after)  # first skipped or repeated wall time
    end = naive_at + max(change.before, change.after)
    middle = first + (end - first) // 2
    last = end - timedelta(minutes=1)
    half_past, next_hour = (first.minute + 30) % 60, min(first.hour + 1, 23)
    days = timedelta(days=4)
    weeks = timedelta(days=23)
    return [
        Job(f"{first.minute} {first.hour} * * *", FIXED_FIRES, days),
        Job(f"{middle.minute} {middle.hour} * * *", FIXED_FIRES, days),
        Job(f"{last.minute} {last.hour} * * *", FIXED_FIRES, days),
        Job(f"{first.minute},{half_past} {first.hour}-{next_hour} * * *", FIXED_FIRES, days),
        Job(f"30 {middle.minute} {middle.hour} * * *", FIXED_FIRES, days),
        Job(f"*/20 {first.minute} {first.hour} * * *", FIXED_FIRES, days),
        Job("30 2 * * *", FIXED_FIRES, days),
        Job("0 0 * * *", FIXED_FIRES, days),
        Job(f"{middle.minute} {middle.hour} * * {_weekday(middle)}", FIXED_FIRES, weeks),
        Job(f"{middle.minute} {middle.hour} * * {(_weekday(middle) + 1) % 7}", FIXED_FIRES, weeks),
        # cron-parser's forms: ? is *, either day field when both are restricted, and H (its
        # seed is ""): H(a-b)/n is fixed-time like a-b/n, H/n a wildcard job like */n
        Job(f"{first.minute} {first.hour} ? * ?", FIXED_FIRES, days),
        Job(f"{middle.minute} {middle.hour} */2 * {_weekday(middle)}", FIXED_FIRES, weeks),
        Job(f"H(0-59)/20 {first.hour} * * *", FIXED_FIRES, days),
        Job(f"H/20 {first.hour} * * *", WILDCARD_FIRES, timedelta(days=3)),
        Job("*/15 * * * *", WILDCARD_FIRES, timedelta(hours=6)),
        Job("0 * * * *", WILDCARD_FIRES, timedelta(hours=10)),
        Job("*/7 * * * * *", WILDCARD_FIRES, timedelta(minutes=2)),
        Job(f"{middle.minute} * * * *", WILDCARD_FIRES, timedelta(hours=10)),
        Job(f"*/10 {first.hour} * * *", WILDCARD_FIRES, timedelta(days=3)),
    ]


def starts_for(change: Change) -> list[datetime]:
    size = abs(change.after - change.before)
    at = change.at
    return [
        at - timedelta(days=1, hours=1),
        at - timedelta(hours=2),
        at - size / 2,  # inside a fold's first pass
        at - timedelta(seconds=1),
        at - timedelta(milliseconds=500),
        at,  # exactly at a gap's end (fires must be strictly later)
        at + size / 2,  # inside a fold's second pass
        at + size - timedelta(seconds=1),  # the last second of a second pass
        at + size + timedelta(hours=1),
    ]


def _merged_windows(starts: list[datetime], span: timedelta) -> list[tuple[datetime, datetime]]:
    windows: list[tuple[datetime, datetime]] = []
    for start in sorted(starts):
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], start + span))
        else:
            windows.append((start, start + span))
    return windows


def _wall_ranges(
    zone: ZoneInfo, changes: tuple[Change, ...], low: datetime, high: datetime
) -> list[tuple[datetime, datetime]]:
    """The wall-clock times that instants in [low, high] show, plus those of any gap crossed.

    Any fire in (start, high] for a start >= low comes from one of these: an instant's own local
    time, or a skipped time whose gap ends inside the window.
    """
    offset = low.astimezone(zone).utcoffset()
    assert offset is not None
    ranges, piece_start = [], low
    for change in (c for c in changes if low < c.at <= high):
        assert change.before == offset
        ranges.append((piece_start + offset, change.at + offset))
        if change.is_gap:
            ranges.append((change.at + change.before, change.at + change.after))
        piece_start, offset = change.at, change.after
    ranges.append((piece_start + offset, high + offset + timedelta(seconds=1)))
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        start = start.replace(tzinfo=None, microsecond=0)
        end = end.replace(tzinfo=None)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def check_zone(name: str) -> tuple[int, list[str]]:
    """Compare engine and reference on every change of one zone: (cases, mismatch lines)."""
    zone = ZoneInfo(name)
    changes = zone_changes(name)
    cases, mismatches = 0, []
    for change in changes:
        starts = starts_for(change)
        for job in jobs_for(change):
            reference = parse_reference(job.expression)
            for low, high in _merged_windows(starts, job.span):
                fires = sorted(
                    {
                        fire
                        for wall_low, wall_high in _wall_ranges(zone, changes, low, high)
                        for fire in fires_in_walls(reference, zone, wall_low, wall_high)
                    }
                )
                for start in starts:
                    if not low <= start <= high - job.span:
                        continue
                    expected = [f for f in fires if start < f <= high][: job.fires]
                    assert len(expected) == job.fires, f"window too short: {name} {job} {start}"
                    found = next_fire_times(job.expression, name, start, job.fires)
                    cases += 1
                    if found != expected:
                        mismatches.append(
                            f"{name} change {change.at:%Y-%m-%d %H:%M}Z {change.before}->"
                            f"{change.after} job {job.expression!r} after {start.isoformat()}:"
                            f" engine {[f.isoformat() for f in found]}"
                            f" reference {[f.isoformat() for f in expected]}"
                        )
    return cases, mismatches
