"""describe(): plain English for schedules, as the API's preview shows them."""

from __future__ import annotations

import pytest

from keeperhub_scheduler.cron import describe
from keeperhub_scheduler.errors import InvalidScheduleError


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("0 9 * * mon-fri", "At 09:00, Monday through Friday"),
        ("30 2 * * *", "At 02:30"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("*/5 9-17 * * 1-5", "Every 5 minutes, between 09:00 and 17:59, Monday through Friday"),
        ("5/10 * * * *", "Every 10 minutes, starting at 5 minutes past the hour"),
        ("5-5/10 * * * *", "At 5 minutes past the hour"),  # a-a/n is just a
        # six fields: seconds first
        ("*/15 * * * * *", "Every 15 seconds"),
        ("0 30 2 * * *", "At 02:30"),
        ("30 0 9 * * *", "At 09:00:30"),
        # macros
        ("@hourly", "Every hour"),
        ("@daily", "At 00:00"),
        ("@midnight", "At 00:00"),
        ("@weekly", "At 00:00, only on Sunday"),
        ("@monthly", "At 00:00, on day 1 of the month"),
        ("@yearly", "At 00:00, on day 1 of the month, only in January"),
        ("@annually", "At 00:00, on day 1 of the month, only in January"),
        # days
        ("0 0 29 2 *", "At 00:00, on day 29 of the month, only in February"),
        ("0 0 L * *", "At 00:00, on the last day of the month"),
        ("0 0 * * 5#5", "At 00:00, on the fifth Friday of the month"),
        ("0 0 * * 5L", "At 00:00, on the last Friday of the month"),
        ("0 0 * * 0", "At 00:00, only on Sunday"),
        ("0 0 * * 7", "At 00:00, only on Sunday"),
        ("0 0 * * 1/2", "At 00:00, only on Monday, Wednesday, Friday or Sunday"),
        ("0 0 * * MON,5L", "At 00:00, only on Monday or the last Friday of the month"),
        # both day fields restricted (neither is exactly * or ?): either may match
        ("0 0 1,15 * MON", "At 00:00, on day 1 and 15 of the month, or on Monday"),
        ("0 0 1 * 1-5", "At 00:00, on day 1 of the month, or on Monday through Friday"),
        ("0 0 1 * 5#5", "At 00:00, on day 1 of the month, or on the fifth Friday of the month"),
        ("0 0 */2 * MON", "At 00:00, every 2 days, or on Monday"),  # */2 is restricted
        (
            "0 0 1 * */2",
            "At 00:00, on day 1 of the month, or on Tuesday, Thursday, Saturday or Sunday",
        ),
        (
            "13 10 */15 1 MON-FRI",
            "At 10:13, every 15 days, or on Monday through Friday, only in January",
        ),
        # ? is *
        ("0 9 ? * MON-FRI", "At 09:00, Monday through Friday"),
        ("0 9 ? * ?", "At 09:00"),
        ("? * * * *", "Every minute"),
        ("0 0 1 * ?", "At 00:00, on day 1 of the month"),
        # steps wider than half the field: the values they give, not "every 90 minutes"
        ("*/90 * * * *", "Every hour"),
        ("0 */45 * * *", "At 00:00"),
        ("30/45 * * * *", "At 30 minutes past the hour"),
        ("0 0 */40 * *", "At 00:00, on day 1 of the month"),
        ("0 0 */20 * *", "At 00:00, on day 1 and 21 of the month"),
        # *#k: the k-th of every weekday
        ("0 0 * * *#2", "At 00:00, only on days 8 through 14 of the month"),
        # the other predefined expressions
        ("@minutely", "Every minute"),
        ("@secondly", "Every second"),
        ("@weekdays", "At 00:00, Monday through Friday"),
    ],
)
def test_describe(expression: str, text: str) -> None:
    assert describe(expression) == text


# H reads as what it picks for the schedule: sch_1's draws are minute 8, hour 6, day of month 26,
# month 2 (February) and day of week 2 (Tuesday); see test_hash.py.
@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("H H * * *", "At 06:08"),
        ("H 9 * * 1-5", "At 09:08, Monday through Friday"),
        ("H/20 * * * *", "Every 20 minutes, starting at 2 minutes past the hour"),
        ("H(0-29)/5 * * * *", "Every 5 minutes, minutes 0 through 25 past the hour"),
        ("0 0 H * *", "At 00:00, on day 26 of the month"),
        ("0 0 1 H *", "At 00:00, on day 1 of the month, only in February"),
        ("0 0 * * H", "At 00:00, only on Tuesday"),
        ("0 0 * * H#2", "At 00:00, only on the second Tuesday of the month"),
        ("0 0 * * HL", "At 00:00, only on the last Tuesday of the month"),
    ],
)
def test_describe_hashed(expression: str, text: str) -> None:
    assert describe(expression, "sch_1") == text


@pytest.mark.parametrize("expression", ["", "0 0 30 2 *", "60 * * * *", "@reboot"])
def test_describe_validates_first(expression: str) -> None:
    with pytest.raises(InvalidScheduleError):
        describe(expression)
