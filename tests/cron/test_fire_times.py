"""next_fire_times, iter_fire_times and dst_note: the contract, and the known traps.

The traps are the places where cronsim (which implements the same rules) is known to go wrong:
a fixed-time job asked from inside a fold's second pass, 30- and 45-minute changes, gaps at
local midnight, Apia's skipped day, ``a-a/n``, and 6-field expressions with fixed times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from keeperhub_scheduler.cron import dst_note, iter_fire_times, next_fire_times
from keeperhub_scheduler.errors import InvalidScheduleError


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires(expression: str, zone: str, after: datetime, count: int) -> list[str]:
    return [
        f.strftime("%Y-%m-%dT%H:%M:%S") for f in next_fire_times(expression, zone, after, count)
    ]


def notes(expression: str, zone: str, after: datetime, count: int) -> list[str | None]:
    return [dst_note(expression, zone, f) for f in next_fire_times(expression, zone, after, count)]


# --- the contract ---------------------------------------------------------------------------


def test_results_are_aware_utc_and_strictly_after() -> None:
    found = next_fire_times("0 9 * * *", "Europe/Berlin", utc(2025, 6, 1, 7), 3)
    assert found == [utc(2025, 6, 1, 7) + timedelta(days=d) for d in (1, 2, 3)]  # 09:00 CEST
    assert all(f.tzinfo is UTC for f in found)


def test_after_may_be_in_any_zone() -> None:
    tokyo = datetime(2025, 6, 1, 16, tzinfo=ZoneInfo("Asia/Tokyo"))  # 07:00 UTC
    assert next_fire_times("0 9 * * *", "Europe/Berlin", tokyo, 1) == [utc(2025, 6, 2, 7)]


def test_strictly_after_to_the_microsecond() -> None:
    assert fires("0 9 * * *", "UTC", utc(2025, 6, 1, 9, 0, 0), 1) == ["2025-06-02T09:00:00"]
    just_before = utc(2025, 6, 1, 8, 59, 59) + timedelta(microseconds=999_999)
    assert fires("0 9 * * *", "UTC", just_before, 1) == ["2025-06-01T09:00:00"]
    half_past = utc(2025, 6, 1, 9, 0, 0) + timedelta(microseconds=500_000)
    assert fires("* * * * * *", "UTC", half_past, 1) == ["2025-06-01T09:00:01"]


def test_count_zero_and_iteration_agree() -> None:
    assert next_fire_times("*/5 * * * *", "UTC", utc(2025, 1, 1), 0) == []
    lazy = iter_fire_times("*/5 * * * *", "Asia/Kolkata", utc(2025, 1, 1))
    assert list(islice(lazy, 50)) == next_fire_times(
        "*/5 * * * *", "Asia/Kolkata", utc(2025, 1, 1), 50
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: next_fire_times("* * * * *", "UTC", datetime(2025, 1, 1), 1), "after"),
        (lambda: next_fire_times("* * * * *", "UTC", "2025-01-01", 1), "after"),
        (lambda: next_fire_times("* * * * *", "UTC", utc(2025, 1, 1), -1), "count"),
        (lambda: next_fire_times("* * * * *", "UTC", utc(2025, 1, 1), True), "count"),
        (lambda: next_fire_times("* * * * *", "Mars/Base", utc(2025, 1, 1), 1), "timezone"),
        (lambda: next_fire_times("60 * * * *", "UTC", utc(2025, 1, 1), 1), "minute"),
        (lambda: iter_fire_times("* * * * *", "UTC", datetime(2025, 1, 1)), "after"),
        (lambda: iter_fire_times("", "UTC", utc(2025, 1, 1)), "cron_expression"),
        (lambda: dst_note("* * * * *", "", utc(2025, 1, 1)), "timezone"),
    ],
)
def test_invalid_arguments(call: object, field: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field


def test_the_sequence_ends_before_9999_12_30() -> None:
    assert fires("0 0 29 2 *", "UTC", utc(9990, 1, 1), 5) == [
        "9992-02-29T00:00:00",
        "9996-02-29T00:00:00",
    ]
    assert fires("0 0 * * *", "UTC", utc(9999, 12, 28), 5) == ["9999-12-29T00:00:00"]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 0 29 2 *", utc(2025, 1, 1), ["2028-02-29", "2032-02-29", "2036-02-29"]),
        ("0 0 * * 5#5", utc(2025, 1, 1), ["2025-01-31", "2025-05-30", "2025-08-29"]),
        ("0 0 L * *", utc(2025, 1, 1), ["2025-01-31", "2025-02-28", "2025-03-31"]),
        ("0 0 L 2 *", utc(2027, 3, 1), ["2028-02-29", "2029-02-28", "2030-02-28"]),
        ("0 0 * * 1L", utc(2025, 1, 1), ["2025-01-27", "2025-02-24", "2025-03-31"]),
        ("0 0 13 * 5", utc(2025, 6, 1), ["2025-06-06", "2025-06-13", "2025-06-20"]),  # Vixie: or
        # cron-parser's rule: */2 is restricted, so odd days or Fridays (not odd Fridays)
        ("0 0 */2 * 5", utc(2025, 6, 1), ["2025-06-03", "2025-06-05", "2025-06-06"]),
        ("0 0 * 2 0#5", utc(2025, 1, 1), ["2032-02-29", "2060-02-29", "2088-02-29"]),
    ],
)
def test_rare_days(expression: str, after: datetime, expected: list[str]) -> None:
    assert [f[:10] for f in fires(expression, "UTC", after, 3)] == expected


def test_a_to_a_step_n_is_the_single_value_a() -> None:
    assert fires("5-5/10 * * * *", "UTC", utc(2025, 1, 1), 3) == [
        "2025-01-01T00:05:00",
        "2025-01-01T01:05:00",
        "2025-01-01T02:05:00",
    ]


def test_dst_note_is_none_for_ordinary_times_and_non_fires() -> None:
    assert dst_note("0 9 * * *", "Europe/Berlin", utc(2025, 6, 1, 7)) is None
    assert dst_note("0 9 * * *", "Europe/Berlin", utc(2025, 6, 1, 8)) is None  # not a fire time
    assert dst_note("30 2 * * *", "UTC", utc(2025, 3, 30, 2, 30)) is None


# --- the traps ------------------------------------------------------------------------------


def test_fixed_time_job_asked_from_inside_the_second_pass() -> None:
    # New York, 2025-11-02: 01:30 EDT was at 05:30 UTC; at 06:10 UTC it is 01:10 EST, second pass.
    assert fires("30 1 * * *", "America/New_York", utc(2025, 11, 2, 6, 10), 2) == [
        "2025-11-03T06:30:00",
        "2025-11-04T06:30:00",
    ]


def test_chatham_45_minute_fold_is_walked_in_real_time() -> None:
    # 2025-04-06 03:45 +13:45 -> 02:45 +12:45 at 14:00 UTC: 02:45-03:45 happens twice.
    assert fires("*/15 * * * *", "Pacific/Chatham", utc(2025, 4, 5, 13, 40), 7) == [
        "2025-04-05T13:45:00",  # 03:30, first pass
        "2025-04-05T14:00:00",  # 02:45, second pass
        "2025-04-05T14:15:00",
        "2025-04-05T14:30:00",
        "2025-04-05T14:45:00",  # 03:30, second pass
        "2025-04-05T15:00:00",  # 03:45
        "2025-04-05T15:15:00",
    ]
    assert notes("*/15 * * * *", "Pacific/Chatham", utc(2025, 4, 5, 13, 40), 2) == [
        "03:30 occurs twice (clocks go back); first pass",
        "02:45 occurs twice (clocks go back); second pass",
    ]


def test_chatham_45_minute_gap_keeps_its_fixed_fires() -> None:
    # 2025-09-28 02:45 +12:45 -> 03:45 +13:45 at 14:00 UTC (27 September).
    assert fires("0 3 * * *", "Pacific/Chatham", utc(2025, 9, 27, 12), 2) == [
        "2025-09-27T14:00:00",  # 03:00 does not exist: fired when the gap ended (03:45)
        "2025-09-28T13:15:00",
    ]


def test_gap_at_local_midnight() -> None:
    # Santiago, 2022-09-11: 00:00 -04 -> 01:00 -03 at 04:00 UTC. No spurious 00:00.
    assert fires("0 * * * *", "America/Santiago", utc(2022, 9, 11, 2, 30), 3) == [
        "2022-09-11T03:00:00",  # 23:00 on the 10th
        "2022-09-11T04:00:00",  # 01:00
        "2022-09-11T05:00:00",
    ]
    assert fires("30 0 * * *", "America/Santiago", utc(2022, 9, 10, 12), 2) == [
        "2022-09-11T04:00:00",  # 00:30 does not exist: the gap's end
        "2022-09-12T03:30:00",
    ]


def test_apia_skipped_day() -> None:
    # 2011-12-29 24:00 -10 -> 2011-12-31 00:00 +14 at 10:00 UTC: 30 December never happened.
    assert fires("0 * * * *", "Pacific/Apia", utc(2011, 12, 30, 8, 30), 3) == [
        "2011-12-30T09:00:00",  # 23:00 on the 29th
        "2011-12-30T10:00:00",  # 00:00 on the 31st
        "2011-12-30T11:00:00",
    ]
    assert fires("0 9 * * *", "Pacific/Apia", utc(2011, 12, 29), 3) == [
        "2011-12-29T19:00:00",
        "2011-12-30T10:00:00",  # 09:00 on the 30th: fired when the gap ended, on the 31st
        "2011-12-30T19:00:00",
    ]
    assert dst_note("0 9 * * *", "Pacific/Apia", utc(2011, 12, 30, 10)) == (
        "09:00 on 2011-12-30 does not exist (clocks jump forward); fired when the gap ended"
    )
    # Only when the day fields match the skipped date: the 30th was a Friday.
    assert fires("0 9 * * 5", "Pacific/Apia", utc(2011, 12, 29), 1) == ["2011-12-30T10:00:00"]
    assert fires("0 9 * * 6", "Pacific/Apia", utc(2011, 12, 29), 1) == ["2011-12-30T19:00:00"]


def test_several_skipped_times_and_a_matching_gap_end_make_one_fire() -> None:
    # New York, 2025-03-09: 02:00 and 02:30 are skipped, 03:00 EDT matches as well.
    assert fires("0,30 2,3 * * *", "America/New_York", utc(2025, 3, 9, 6), 3) == [
        "2025-03-09T07:00:00",
        "2025-03-09T07:30:00",
        "2025-03-10T06:00:00",
    ]
    assert notes("0,30 2,3 * * *", "America/New_York", utc(2025, 3, 9, 6), 1) == [
        "02:00, 02:30 do not exist (clocks jump forward); fired when the gap ended"
    ]


def test_six_field_fixed_time_job_follows_the_fixed_time_rules() -> None:
    assert fires("0 30 2 * * *", "America/New_York", utc(2025, 3, 8, 8), 2) == [
        "2025-03-09T07:00:00",
        "2025-03-10T06:30:00",
    ]
    # Seconds that vary do not make it a wildcard job: one fire for the whole gap.
    assert fires("*/20 30 2 * * *", "America/New_York", utc(2025, 3, 8, 8), 2) == [
        "2025-03-09T07:00:00",
        "2025-03-10T06:30:00",
    ]
    # ... and the first pass only in a fold.
    assert fires("*/20 30 1 * * *", "America/New_York", utc(2025, 11, 2, 5), 4) == [
        "2025-11-02T05:30:00",
        "2025-11-02T05:30:20",
        "2025-11-02T05:30:40",
        "2025-11-03T06:30:00",
    ]
