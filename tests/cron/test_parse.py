"""Which cron expressions are accepted, what they mean, and what is said about the rest."""

from __future__ import annotations

import pytest

from keeperhub_scheduler.cron import CronExpression, parse_cron, validate_cron_expression
from keeperhub_scheduler.errors import InvalidScheduleError

ALL_DAYS = frozenset(range(7))


def weekdays(expr: CronExpression) -> set[int]:
    return {w for w in range(7) if expr.day_of_week_bits >> w & 1}


def days(expr: CronExpression) -> set[int]:
    return {d for d in range(1, 32) if expr.day_of_month_bits >> (d - 1) & 1}


# (expression, attribute, expected value)
ACCEPTED = [
    # plain values, ranges, lists, steps
    ("0 9 * * 1-5", "minutes", (0,)),
    ("0 9 * * 1-5", "hours", (9,)),
    ("0,30 8-10 * * *", "minutes", (0, 30)),
    ("0,30 8-10 * * *", "hours", (8, 9, 10)),
    ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
    ("10-20/5 * * * *", "minutes", (10, 15, 20)),
    ("5/20 * * * *", "minutes", (5, 25, 45)),  # a/n: a to the field's maximum
    ("5-5/10 * * * *", "minutes", (5,)),  # a-a/n is the single value a, not a/n
    ("*/60 * * * *", "minutes", (0,)),
    # any step of 1 or more, as cron-parser: wider than the field gives its first value
    ("*/90 * * * *", "minutes", (0,)),
    ("*/61 * * * *", "minutes", (0,)),
    ("30/45 * * * *", "minutes", (30,)),
    ("0 */45 * * *", "hours", (0,)),
    ("0 0-23/25 * * *", "hours", (0,)),
    ("*/99999999999999999999 * * * *", "minutes", (0,)),
    # ? is *, in every field
    ("? * * * *", "minutes", tuple(range(60))),
    ("?/20 * * * *", "minutes", (0, 20, 40)),
    ("0 9 ? * MON-FRI", "hours", (9,)),
    ("0 */6 * * *", "hours", (0, 6, 12, 18)),
    ("007 * * * *", "minutes", (7,)),
    # names, any case
    ("0 0 1 jan,Mar-MAY *", "months", (1, 3, 4, 5)),
    ("0 0 1 JAN-DEC/3 *", "months", (1, 4, 7, 10)),
    # seconds
    ("*/15 * * * * *", "seconds", (0, 15, 30, 45)),
    ("*/15 * * * * *", "has_seconds", True),
    ("0 9 * * *", "seconds", (0,)),
    ("0 9 * * *", "has_seconds", False),
    # L, n#k, nL
    ("0 0 L * *", "last_day_of_month", True),
    ("0 0 1,L * *", "last_day_of_month", True),
    ("0 0 * * 5#5", "nth_weekdays", ((5, 5),)),
    ("0 0 * * fri#1,MON#3", "nth_weekdays", ((1, 3), (5, 1))),
    ("0 0 * * 0#1", "nth_weekdays", ((0, 1),)),  # the first Sunday
    ("0 0 * * 7#2", "nth_weekdays", ((0, 2),)),  # 7 is Sunday here too
    ("0 0 * * 5L", "last_weekdays", (5,)),
    ("0 0 * * 7L", "last_weekdays", (0,)),
    # cron-parser's rule: either day field may match when neither is exactly "*" or "?"
    ("0 0 1 * MON", "days_match_either", True),
    ("0 0 1,15 * 1-5", "days_match_either", True),
    ("0 0 * * MON", "days_match_either", False),
    ("0 0 1 * *", "days_match_either", False),
    ("0 9 ? * MON-FRI", "days_match_either", False),
    ("0 0 1 * ?", "days_match_either", False),
    # (the Vixie rule read these as "both must match": they start with "*")
    ("0 0 */2 * MON", "days_match_either", True),
    ("0 0 1 * */2", "days_match_either", True),
    ("13 10 */15 1 MON-FRI", "days_match_either", True),
    ("0 0 */1 * *", "days_match_either", False),
    # fixed-time jobs: minute and hour both not starting with "*"
    ("30 2 * * *", "is_fixed_time", True),
    ("0,30 2-4 * * *", "is_fixed_time", True),
    ("5/10 2 * * *", "is_fixed_time", True),
    ("0 30 2 * * *", "is_fixed_time", True),
    ("*/10 30 2 * * *", "is_fixed_time", True),  # the seconds field plays no part
    ("*/5 2 * * *", "is_fixed_time", False),
    ("0 */2 * * *", "is_fixed_time", False),
    ("0 * * * *", "is_fixed_time", False),
    ("*/7 * * * * *", "is_fixed_time", False),
    ("? 2 * * *", "is_fixed_time", False),  # ? is *
    ("H H * * *", "is_fixed_time", True),  # one value each
    ("H(0-29) 2 * * *", "is_fixed_time", True),
    ("H/15 2 * * *", "is_fixed_time", False),  # a step over the whole field, like */15
    ("H(0-29)/10 2 * * *", "is_fixed_time", True),  # like 0-29/10
    # macros
    ("@hourly", "fields", ("0", "0", "*", "*", "*", "*")),
    ("@daily", "fields", ("0", "0", "0", "*", "*", "*")),
    ("@midnight", "fields", ("0", "0", "0", "*", "*", "*")),
    ("@weekly", "fields", ("0", "0", "0", "*", "*", "0")),
    ("@monthly", "fields", ("0", "0", "0", "1", "*", "*")),
    ("@yearly", "fields", ("0", "0", "0", "1", "1", "*")),
    ("@annually", "fields", ("0", "0", "0", "1", "1", "*")),
    ("@minutely", "fields", ("0", "*", "*", "*", "*", "*")),
    ("@secondly", "fields", ("*", "*", "*", "*", "*", "*")),
    ("@weekdays", "fields", ("0", "0", "0", "*", "*", "1-5")),
    ("@weekends", "fields", ("0", "0", "0", "*", "*", "0,6")),
    ("@DAILY", "is_fixed_time", True),
    ("@hourly", "is_fixed_time", False),
    # spacing
    ("  0  9\t* *   *  ", "hours", (9,)),
    ("0\u00a09 * * *\u3000", "hours", (9,)),  # JavaScript's whitespace, as cron-parser splits
    # n#k as cron-parser reads it: any weekday, and k as a JavaScript number
    ("0 0 * * *#2", "nth_weekdays", tuple((w, 2) for w in range(7))),
    ("0 0 * * ?#5", "nth_weekdays", tuple((w, 5) for w in range(7))),
    ("0 0 * * 1#2.0", "nth_weekdays", ((1, 2),)),
    ("0 0 * * 1#0x2", "nth_weekdays", ((1, 2),)),
    ("0 0 * * FRIL", "last_weekdays", (5,)),
]


@pytest.mark.parametrize(("expression", "attribute", "expected"), ACCEPTED)
def test_accepted(expression: str, attribute: str, expected: object) -> None:
    assert getattr(parse_cron(expression), attribute) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 * * 0", {0}),
        ("0 0 * * 7", {0}),  # 7 is Sunday
        ("0 0 * * 5-7", {5, 6, 0}),
        ("0 0 * * sun,SAT", {0, 6}),
        ("0 0 * * MON-FRI/2", {1, 3, 5}),
        ("0 0 * * 1/2", {1, 3, 5, 0}),  # a/n runs to 7, which is Sunday
        ("0 0 * * *", set(ALL_DAYS)),
        ("0 0 * * 5#5", set()),  # only n#k items: no plain weekday
    ],
)
def test_day_of_week_values(expression: str, expected: set[int]) -> None:
    assert weekdays(parse_cron(expression)) == expected


def test_day_of_month_values() -> None:
    assert days(parse_cron("0 0 1,15,L * *")) == {1, 15}
    assert days(parse_cron("0 0 */10 * *")) == {1, 11, 21, 31}


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # fires in leap years
        "0 0 30 2 MON",  # either day field: Mondays in February
        "0 0 31 1,4 *",  # January has a 31st
        "0 0 L 2 *",
        "0 0 * 2 5#5",  # 29-day Februaries that start on a Friday
        "0 0 */2 2 0#5",  # a Sunday 29 February
        "0 0 */15 * 1#2",  # either day field: both are restricted
        "0 0 31 2 MON",  # Mondays in February
        "0 0 30 2 ?#5",  # 29 Februaries
    ],
)
def test_days_that_exist_somewhere(expression: str) -> None:
    validate_cron_expression(expression)


FIELDS = (
    "expected 5 (minute hour day-of-month month day-of-week) "
    "or 6 (second minute hour day-of-month month day-of-week)"
)
SYNTAX = "expected a number, a range a-b, a step */n, a-b/n or a/n, an H form, or a list of these"
H_ALONE = "H stands alone as a list item: H, H/n, H(a-b) or H(a-b)/n"

# (expression, field, message)
REJECTED = [
    ("", "cron_expression", "cron expression is empty"),
    ("   \t ", "cron_expression", "cron expression is empty"),
    ("* * * *", "cron_expression", f"cron expression has 4 fields; {FIELDS}"),
    ("* * * * * * *", "cron_expression", f"cron expression has 7 fields; {FIELDS}"),
    ("0#1", "cron_expression", f"cron expression has 1 field; {FIELDS}"),
    ("x" * 1100, "cron_expression", "cron expression is too long (1100 characters; at most 1024)"),
    ("60 * * * *", "minute", "minute 60 is out of range 0-59"),
    ("0 25 * * *", "hour", "hour 25 is out of range 0-23"),
    ("0 0 32 * *", "day_of_month", "day of month 32 is out of range 1-31"),
    ("0 0 0 * *", "day_of_month", "day of month 0 is out of range 1-31"),
    ("0 0 1 13 *", "month", "month 13 is out of range 1-12"),
    ("0 0 * * 8", "day_of_week", "day of week 8 is out of range 0-7"),
    ("60 * * * * *", "second", "second 60 is out of range 0-59"),
    ("99999999999999999999 * * * *", "minute", "minute 99999999999999999999 is out of range 0-59"),
    ("*/0 * * * *", "minute", "minute step 0 is out of range: a step is 1 or more"),
    ("0 0-23/00 * * *", "hour", "hour step 00 is out of range: a step is 1 or more"),
    ("5-1 * * * *", "minute", "minute range 5-1 is reversed (the start is after the end)"),
    (
        "0 0 * * FRI-MON",
        "day_of_week",
        "day of week range FRI-MON is reversed (the start is after the end)",
    ),
    ("0 0 30 2 *", "day_of_month", "day of month 30 never occurs in February"),
    ("0 0 30,31 2 *", "day_of_month", "day of month 30,31 never occurs in February"),
    (
        "0 0 31 4,6,9,11 *",
        "day_of_month",
        "day of month 31 never occurs in April, June, September or November",
    ),
    ("١ * * * *", "minute", "minute '١' contains '١'; only ASCII is allowed"),
    ("0 ２ * * *", "hour", "hour '２' contains '２'; only ASCII is allowed"),
    ("1--2 * * * *", "minute", f"minute field '1--2' is not valid: {SYNTAX}"),
    ("*/ * * * *", "minute", f"minute field '*/' is not valid: {SYNTAX}"),
    ("*-5 * * * *", "minute", f"minute field '*-5' is not valid: {SYNTAX}"),
    ("0 0 1W * *", "day_of_month", f"day of month field '1W' is not valid: {SYNTAX}"),
    ("0 0 ?-5 * *", "day_of_month", f"day of month field '?-5' is not valid: {SYNTAX}"),
    (",, * * * *", "minute", "minute field ',,' has an empty list item"),
    ("1, * * * *", "minute", "minute field '1,' has an empty list item"),
    ("L * * * *", "minute", "'L' is not allowed in the minute field"),
    ("0 0 * L *", "month", "'L' is not allowed in the month field"),
    (
        "0 0 L-2 * *",
        "day_of_month",
        "day of month 'L' (the last day) must stand alone, not in a range or step",
    ),
    (
        "0 0 * * L",
        "day_of_week",
        "day of week 'L' must follow a weekday, e.g. 5L for the last Friday",
    ),
    ("0 0 * * 5#6", "day_of_week", "day of week 5#6: occurrence 6 is out of range 1-5"),
    ("0 0 * * 5#0", "day_of_week", "day of week 5#0: occurrence 0 is out of range 1-5"),
    ("0 0 * * 8#1", "day_of_week", "day of week 8 is out of range 0-7"),
    ("0 0 * * 5#x", "day_of_week", "day of week 5#X: occurrence 'X' is not a number"),
    ("0 0 * * 1#2.5", "day_of_week", "day of week 1#2.5: occurrence 2.5 is not a whole number"),
    ("0 0 * * 1-5#2", "day_of_week", "day of week 1-5#2: '#' follows one weekday, *, ? or H"),
    (
        "0 0 * * 1#1#1",
        "day_of_week",
        "day of week 1#1#1 is not valid: expected n#k, the k-th weekday n",
    ),
    # H stands alone as a list item
    ("1-H * * * *", "minute", f"minute H in a range or step: {H_ALONE}"),
    ("H5 * * * *", "minute", f"minute 'H5': {H_ALONE}"),
    ("5/H * * * *", "minute", f"minute '5/H': {H_ALONE}"),
    ("H/0 * * * *", "minute", "minute step 0 is out of range: a step is 1 or more"),
    ("H(5-3) * * * *", "minute", "minute range H(5-3) is reversed (the start is after the end)"),
    ("H(70-80) * * * *", "minute", "minute H(70-80) has no value in the field's range 0-59"),
    ("0#1 * * * *", "minute", "'#' is only allowed in the day of week field, not in minute"),
    ("0 0 * JANUARY *", "month", "month 'JANUARY' is not a number or a name JAN-DEC"),
    ("0 0 * * FUN", "day_of_week", "day of week 'FUN' is not a number or a name SUN-SAT"),
    ("MON * * * *", "minute", "minute 'MON' is not a number"),
    (
        "@reboot",
        "cron_expression",
        "unknown macro '@reboot'; expected one of @yearly, @annually, @monthly, @weekly,"
        " @daily, @midnight, @hourly, @minutely, @secondly, @weekdays, @weekends",
    ),
    ("@daily 0", "cron_expression", "the macro @daily must stand alone"),
]


@pytest.mark.parametrize(("expression", "field", "message"), REJECTED)
def test_rejected(expression: str, field: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError) as caught:
        validate_cron_expression(expression)
    assert (caught.value.field, str(caught.value)) == (field, message)


@pytest.mark.parametrize("value", [None, 5, b"* * * * *", ["* * * * *"]])
def test_not_a_string(value: object) -> None:
    with pytest.raises(InvalidScheduleError, match="cron expression must be a string"):
        validate_cron_expression(value)  # type: ignore[arg-type]


def test_parse_is_cached() -> None:
    assert parse_cron("0 9 * * 1-5") is parse_cron("0 9 * * 1-5")
    assert parse_cron("0 9 * * 1-5").source == "0 9 * * 1-5"
