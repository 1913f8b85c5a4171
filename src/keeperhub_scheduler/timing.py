"""When a schedule fires: its occurrences, their due instants (jitter) and its plan key.

A schedule is either a cron expression in a time zone (``cron.py`` does the hard part) or an
interval: every ``interval_seconds`` from ``anchor_at``, which is what "every 55 minutes" means
(``*/55`` is not). Either may be bounded by ``start_at`` (first occurrence at or after it) and
``end_at`` (last occurrence at or before it). A cron expression with ``H`` picks its values from
the schedule's id (``hash_seed``); every other timing leaves it empty, so that schedules with the
same timing share one ``Timing`` and its caches.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import Any

from keeperhub_scheduler import cron
from keeperhub_scheduler.errors import InvalidScheduleError

MAX_INTERVAL_SECONDS = 366 * 24 * 3600
MAX_JITTER_SECONDS = 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
# Occurrences are looked up this many at a time and remembered per (timing, instant): thousands of
# schedules that share an expression and were decided through the same instant (every "* * * * *"
# at the top of a minute) then cost one cron search between them, not one each.
OCCURRENCE_CHUNK = 4
OCCURRENCE_CACHE_SIZE = 16_384


def interval_expression(seconds: int) -> str:
    """What ``cron_expression`` holds for an interval schedule (the column is NOT NULL)."""
    return f"@every {seconds}s"


@dataclass(frozen=True)
class Timing:
    """The occurrences of one schedule. Build it with ``Timing.of`` so it is validated."""

    cron_expression: str
    timezone: str = "UTC"
    interval_seconds: int | None = None
    anchor_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    hash_seed: str = ""  # the schedule's id when the expression has H; "" otherwise

    @classmethod
    def of(
        cls,
        cron_expression: str | None,
        timezone: str = "UTC",
        *,
        interval_seconds: int | None = None,
        anchor_at: datetime | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        hash_seed: str = "",
    ) -> Timing:
        cron.validate_timezone(timezone)
        _require_aware(anchor_at, "anchor_at")
        _require_aware(start_at, "start_at")
        _require_aware(end_at, "end_at")
        if start_at and end_at and end_at < start_at:
            raise InvalidScheduleError("end_at is before start_at", field="end_at")
        if interval_seconds is not None:
            validate_interval(interval_seconds)
            cron_expression = interval_expression(interval_seconds)
        elif cron_expression is None:
            raise InvalidScheduleError(
                "either cron_expression or interval_seconds is required", field="cron_expression"
            )
        else:
            cron.validate_cron_expression(cron_expression, hash_seed)
            if not cron.uses_hash(cron_expression):
                hash_seed = ""
        if interval_seconds is not None:
            hash_seed = ""
        return cls(
            cron_expression, timezone, interval_seconds, anchor_at, start_at, end_at, hash_seed
        )

    def for_schedule(self, schedule_id: str) -> Timing:
        """This timing as the schedule ``schedule_id`` fires it: its id picks the values of H."""
        if self.is_interval or self.hash_seed == schedule_id:
            return self
        if not cron.uses_hash(self.cron_expression):
            return self
        cron.validate_cron_expression(self.cron_expression, schedule_id)
        return dataclasses.replace(self, hash_seed=schedule_id)

    @property
    def is_interval(self) -> bool:
        return self.interval_seconds is not None

    def occurrences_after(self, after: datetime) -> Iterator[datetime]:
        """Occurrences strictly after ``after``, inside the bounds, in increasing order."""
        while True:
            chunk = _occurrence_chunk(self, after)
            yield from chunk
            if len(chunk) < OCCURRENCE_CHUNK:
                return  # the schedule has ended
            after = chunk[-1]

    def search_after(self, after: datetime) -> Iterator[datetime]:
        """``occurrences_after`` without the cache: the search itself."""
        if self.start_at is not None and after < self.start_at:
            after = self.start_at - ONE_MICROSECOND
        if self.interval_seconds is not None:
            stream = _interval_after(self.interval_seconds, self.anchor_at or EPOCH, after)
        else:
            stream = cron.iter_fire_times(
                self.cron_expression, self.timezone, after, self.hash_seed
            )
        for occurrence in stream:
            if self.end_at is not None and occurrence > self.end_at:
                return
            yield occurrence

    def next_after(self, after: datetime) -> datetime | None:
        return next(self.occurrences_after(after), None)

    def next_n(self, after: datetime, count: int) -> list[datetime]:
        return list(islice(self.occurrences_after(after), count))

    def describe(self) -> str:
        if self.interval_seconds is not None:
            return f"Every {_duration(self.interval_seconds)}"
        return cron.describe(self.cron_expression, self.hash_seed)

    def plan_key(self, jitter_seconds: int) -> str:
        """A fingerprint of everything that decides when the schedule fires.

        The dispatcher stores it beside ``next_run_at``; a row whose timing no longer matches its
        key was changed by someone who did not re-plan it, and is re-planned before it may fire.
        """
        return _plan_key(self, jitter_seconds)


@lru_cache(maxsize=OCCURRENCE_CACHE_SIZE)
def _occurrence_chunk(timing: Timing, after: datetime) -> tuple[datetime, ...]:
    return tuple(islice(timing.search_after(after), OCCURRENCE_CHUNK))


@lru_cache(maxsize=4096)
def _plan_key(timing: Timing, jitter_seconds: int) -> str:
    parts = [
        timing.cron_expression,
        timing.timezone,
        str(timing.interval_seconds),
        _iso(timing.anchor_at),
        str(jitter_seconds),
        _iso(timing.start_at),
        _iso(timing.end_at),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def cached_timing(
    cron_expression: str | None,
    timezone: str,
    interval_seconds: int | None,
    anchor_at: datetime | None,
    start_at: datetime | None,
    end_at: datetime | None,
    schedule_id: str = "",
) -> Timing:
    """``Timing.of``, remembered: the dispatcher reads the same few timings on thousands of rows.

    The schedule's id is only part of the key for an expression with H, so thousands of
    schedules that share a timing without H share one entry. Invalid input raises every time
    (exceptions are not cached).
    """
    uses_hash = (
        interval_seconds is None
        and isinstance(cron_expression, str)
        and _uses_hash_or_invalid(cron_expression)
    )
    return _cached_timing(
        cron_expression,
        timezone,
        interval_seconds,
        anchor_at,
        start_at,
        end_at,
        schedule_id if uses_hash else "",
    )


def _uses_hash_or_invalid(expression: str) -> bool:
    try:
        return cron.uses_hash(expression)
    except InvalidScheduleError:
        return True  # Timing.of raises it again, with the seed at hand


@lru_cache(maxsize=4096)
def _cached_timing(
    cron_expression: str | None,
    timezone: str,
    interval_seconds: int | None,
    anchor_at: datetime | None,
    start_at: datetime | None,
    end_at: datetime | None,
    hash_seed: str,
) -> Timing:
    return Timing.of(
        cron_expression,
        timezone,
        interval_seconds=interval_seconds,
        anchor_at=anchor_at,
        start_at=start_at,
        end_at=end_at,
        hash_seed=hash_seed,
    )


def timing_of_row(row: Any) -> Timing:
    """The timing of a ``workflow_schedules`` row (any object with its columns as attributes)."""
    return Timing.of(
        row.cron_expression,
        row.timezone,
        interval_seconds=row.interval_seconds,
        anchor_at=row.anchor_at,
        start_at=row.start_at,
        end_at=row.end_at,
        hash_seed=row.id,
    )


def cached_timing_of_row(row: Any) -> Timing:
    """``timing_of_row`` remembered (``cached_timing``), for the dispatcher and the executor."""
    return cached_timing(
        row.cron_expression,
        row.timezone,
        row.interval_seconds,
        row.anchor_at,
        row.start_at,
        row.end_at,
        row.id,
    )


def validate_interval(seconds: int) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidScheduleError(
            "interval must be a whole number of seconds", field="interval_seconds"
        )
    if not 1 <= seconds <= MAX_INTERVAL_SECONDS:
        raise InvalidScheduleError(
            f"interval {seconds} s is out of range 1-{MAX_INTERVAL_SECONDS}",
            field="interval_seconds",
        )


def jitter_offset(
    schedule_id: str, jitter_seconds: int, occurrence: datetime, following: datetime | None
) -> timedelta:
    """How long after its occurrence a run is due: fixed per schedule, never past the next one.

    The fraction comes from a hash of the schedule id, so every dispatcher agrees on it and a
    schedule keeps its place in the spread; it is capped at half the gap to the following
    occurrence so that due instants stay in the occurrences' order.
    """
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(schedule_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    offset = timedelta(milliseconds=int(fraction * jitter_seconds * 1000))
    if following is not None:
        offset = min(offset, (following - occurrence) / 2)
    return offset


def due_occurrences(
    timing: Timing, schedule_id: str, jitter_seconds: int, after: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """(occurrence, due instant) pairs after ``after``: the due instant adds the jitter."""
    stream = timing.occurrences_after(after)
    occurrence = next(stream, None)
    while occurrence is not None:
        # The following occurrence caps the jitter; it is also the next turn's occurrence.
        following = next(stream, None)
        offset = jitter_offset(schedule_id, jitter_seconds, occurrence, following)
        yield occurrence, occurrence + offset
        occurrence = following


def next_due(
    timing: Timing, schedule_id: str, jitter_seconds: int, after: datetime
) -> tuple[datetime, datetime] | None:
    """The first (occurrence, due instant) after ``after``; None once the schedule has ended."""
    return next(due_occurrences(timing, schedule_id, jitter_seconds, after), None)


def _interval_after(every: int, anchor: datetime, after: datetime) -> Iterator[datetime]:
    # Whole microseconds, so that a year of one-second steps cannot drift by rounding.
    step = every * 1_000_000
    elapsed = _microseconds(after - anchor)
    index = elapsed // step + 1
    while True:
        yield anchor + timedelta(microseconds=index * step)
        index += 1


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _require_aware(value: datetime | None, field: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise InvalidScheduleError(f"{field} must include a time zone offset", field=field)


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _duration(seconds: int) -> str:
    units = [("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)]
    parts = []
    for name, size in units:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {name}{'s' if amount != 1 else ''}")
    return ", ".join(parts)
