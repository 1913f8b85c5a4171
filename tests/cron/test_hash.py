"""H: values picked from a seed (the schedule's id), exactly as cron-parser 5 picks them.

The differential test compares whole fire times with cron-parser given the same ``hashSeed``; these
pin the rules one by one.
"""

from __future__ import annotations

import pytest

from keeperhub_scheduler.cron import describe, parse_cron, uses_hash
from keeperhub_scheduler.cron.hashing import draws
from keeperhub_scheduler.errors import InvalidScheduleError
from keeperhub_scheduler.timing import Timing, cached_timing


@pytest.mark.parametrize(
    ("seed", "picks"),
    [
        # cron-parser 5.10.7's parse("H H H H H H", {hashSeed}).stringify(true), read from node
        ("a", (37, 18, 8, 28, 8, 5)),
        ("sch_123", (54, 41, 21, 11, 8, 0)),
        ("main-backup", (40, 23, 2, 7, 4, 0)),
        ("é€𝄞", (14, 15, 1, 15, 11, 1)),  # UTF-16 code units, a surrogate pair too
    ],
)
def test_picks_match_cron_parser(seed: str, picks: tuple[int, ...]) -> None:
    expr = parse_cron("H H H H H H", seed)
    days = [d for d in range(1, 32) if expr.day_of_month_bits >> (d - 1) & 1]
    weekdays = [w for w in range(7) if expr.day_of_week_bits >> w & 1]
    found = (expr.seconds[0], expr.minutes[0], expr.hours[0], days[0], expr.months[0], weekdays[0])
    assert found == picks


def test_one_seed_always_picks_the_same_and_seeds_spread() -> None:
    assert draws("sch_x") == draws("sch_x")
    minutes = {parse_cron("H * * * *", f"sch_{i}").minutes[0] for i in range(600)}
    assert len(minutes) > 50  # 600 schedules land on most of the 60 minutes


def test_an_expression_without_h_does_not_depend_on_the_seed() -> None:
    assert parse_cron("0 9 * * 1-5", "a") is parse_cron("0 9 * * 1-5", "b")
    assert not uses_hash("0 9 * * THU")  # the H of a name is not H
    assert uses_hash("0 0 * * H#2")
    # Timings without H are one (cached) timing for every schedule; with H, one per schedule.
    plain = [cached_timing("0 9 * * *", "UTC", None, None, None, None, s) for s in "ab"]
    assert plain[0] is plain[1]
    assert plain[0].hash_seed == ""
    hashed = [cached_timing("H 9 * * *", "UTC", None, None, None, None, s) for s in "ab"]
    assert [t.hash_seed for t in hashed] == ["a", "b"]
    assert Timing.of("0 9 * * *", hash_seed="a") == Timing.of("0 9 * * *")


@pytest.mark.parametrize(
    ("expression", "attribute", "expected"),
    [
        # sch_1 draws: second 21, minute 8 of 60, hour 6, day 26 of 31, month 2, weekday 2
        ("H/20 * * * *", "minutes", (2, 22, 42)),  # offset floor(r * 20)
        ("H(0-29)/5 * * * *", "minutes", (0, 5, 10, 15, 20, 25)),
        ("H(50-100)/60 * * * *", "minutes", (51,)),  # cut to 50-59, where a step of 60 fits none
        ("H(1-5)/10 * * * *", "minutes", (1,)),  # a step wider than the range: one pick
        ("H(0-10) * * * *", "minutes", (1,)),
        ("H,30 * * * *", "minutes", (8, 30)),
    ],
)
def test_h_forms(expression: str, attribute: str, expected: tuple[int, ...]) -> None:
    assert getattr(parse_cron(expression, "sch_1"), attribute) == expected


def test_a_plain_h_in_the_day_of_month_exists_in_every_selected_month() -> None:
    # February counts as 28 days, so a plain H there always exists.
    for i in range(300):
        days = parse_cron("0 0 H 2 *", f"s{i}").day_of_month_bits
        assert 0 < days < 1 << 28


def test_a_hashed_day_that_a_month_lacks_is_refused_for_that_schedule_only() -> None:
    picks = {i: parse_cron("0 0 H(29-31) 3 *", f"s{i}").day_of_month_bits for i in range(50)}
    refused = [i for i, bits in picks.items() if bits >> 29]  # 30 or 31: not in February
    assert refused
    assert len(refused) < len(picks)
    parse_cron("0 0 H(29-31) 2 *", f"s{next(i for i in picks if i not in refused)}")
    with pytest.raises(InvalidScheduleError) as caught:
        parse_cron("0 0 H(29-31) 2 *", f"s{refused[0]}")
    assert str(caught.value) == (
        "day of month H(29-31) (as H picks it for this schedule) never occurs in February"
    )


def test_describe_and_preview_use_the_picks() -> None:
    assert describe("H H * * *", "sch_1") == "At 06:08"
    timing = Timing.of("H H * * *").for_schedule("sch_1")
    assert timing.describe() == "At 06:08"
    assert Timing.of("0 9 * * *").for_schedule("sch_1").hash_seed == ""
