"""Logs: secrets of any length never written, and a failure that repeats logged once, not each
time it repeats."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from keeperhub_scheduler.telemetry.logs import JsonFormatter, RepeatedFailure, TextFormatter


def written(secrets: tuple[str, ...], message: str, **fields: object) -> str:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t", **fields})
    return JsonFormatter(secrets).format(record)


@pytest.mark.parametrize("secret", ["a", "pw", "abc", "7", "x-y"])
def test_a_short_secret_is_masked_where_it_stands_alone(secret: str) -> None:
    line = written((secret,), f"password {secret} refused", url=f"postgresql://u:{secret}@db/x")
    assert f" {secret} " not in line
    assert f":{secret}@" not in line
    assert line.count("**********") == 2
    assert json.loads(line)["logger"] == "t"  # the rest of the line is left alone


def test_a_short_secret_inside_a_longer_word_is_left_there() -> None:
    line = written(("ab",), "tables and abilities")
    assert json.loads(line)["msg"] == "tables and abilities"


def test_a_long_secret_is_masked_wherever_it_appears() -> None:
    line = written(("s3cr3t-value",), "xs3cr3t-valuex and s3cr3t-value")
    assert "s3cr3t-value" not in line


@pytest.mark.parametrize("secret", ['pa"ss\\word', "pässwörd-1234", "tab\there-1234"])
def test_a_secret_json_would_escape_is_masked_in_its_escaped_form_too(secret: str) -> None:
    line = written((secret,), f"connecting with {secret}")
    assert json.dumps(secret)[1:-1] not in line
    assert secret not in json.loads(line)["msg"]


def test_the_text_format_masks_them_too() -> None:
    record = logging.makeLogRecord({"msg": "token ab and s3cr3t-value", "levelname": "INFO"})
    line = TextFormatter(("ab", "s3cr3t-value")).format(record)
    assert "ab" not in line.split()
    assert "s3cr3t-value" not in line


def test_a_traceback_keeps_the_line_under_16_kib() -> None:
    try:
        raise RuntimeError("x" * 40_000)
    except RuntimeError as error:
        record = logging.makeLogRecord(
            {"msg": "failed", "levelname": "ERROR", "exc_info": (RuntimeError, error, None)}
        )
    line = JsonFormatter().format(record)
    assert len(line) < 16 * 1024
    assert "characters ..." in json.loads(line)["exception"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, object]]]:
    keys = ("error", "repeats", "failures", "failing_for_seconds", "retry_in_seconds")
    return [
        (r.getMessage(), {k: getattr(r, k) for k in keys if hasattr(r, k)}) for r in caplog.records
    ]


def test_a_repeated_failure_is_one_line_then_a_reminder_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    failures = RepeatedFailure(logging.getLogger("t"), "dispatcher pass", clock=clock)
    refused = ConnectionRefusedError("connection refused\n\tIs the server running?")
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(121):  # two minutes of a pass a second
            failures.failed(refused, retry_in_seconds=1.0)
            clock.now += 1
        failures.failed(TimeoutError("timed out"))  # another failure: in full, at once
        clock.now += 1
        failures.succeeded()
        failures.succeeded()  # nothing to say the second time
    error = "ConnectionRefusedError: connection refused"
    assert messages(caplog) == [
        ("dispatcher pass failed", {"error": error, "retry_in_seconds": 1.0}),
        (
            "dispatcher pass still failing",
            {
                "error": error,
                "repeats": 60,
                "failures": 61,
                "failing_for_seconds": 60.0,
                "retry_in_seconds": 1.0,
            },
        ),
        (
            "dispatcher pass still failing",
            {
                "error": error,
                "repeats": 60,
                "failures": 121,
                "failing_for_seconds": 120.0,
                "retry_in_seconds": 1.0,
            },
        ),
        ("dispatcher pass failed", {"error": "TimeoutError: timed out"}),
        ("dispatcher pass recovered", {"failures": 122, "failing_for_seconds": 122.0}),
    ]
    assert caplog.records[0].exc_info is not None  # the first line carries the traceback
    assert caplog.records[1].exc_info is None


def test_every_form_of_the_database_password_is_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from keeperhub_scheduler.cli.startup import settings_and_logging

    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p%40ss-W0rd@127.0.0.1:1/db")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        settings_and_logging()
        logging.getLogger("keeperhub_scheduler.t").warning(
            "as decoded p@ss-W0rd, as written p%40ss-W0rd, url postgresql://u:p%40ss-W0rd@x/db"
        )
    finally:
        root.handlers[:], root.level = handlers, level
    line = capsys.readouterr().err
    assert "ss-W0rd" not in line
    assert line.count("**********") == 3


@pytest.mark.parametrize(
    ("created", "stamp"),
    [
        (1_764_955_399.0421, "2025-12-05T17:23:19.042+00:00"),
        (1_764_955_399.9999, "2025-12-05T17:23:19.999+00:00"),
        (1_764_955_400.001, "2025-12-05T17:23:20.001+00:00"),  # 0.000999... as a float
        (1_764_955_400.9999999, "2025-12-05T17:23:21.000+00:00"),  # rounds to the next second
        (1_700_000_000.5, "2023-11-14T22:13:20.500+00:00"),
    ],
)
def test_each_line_is_stamped_with_its_own_instant_to_the_millisecond(
    created: float, stamp: str
) -> None:
    formatter = JsonFormatter()
    for earlier in (
        created - 1,
        created,
    ):  # the second's part kept from a line before is not reused
        record = logging.LogRecord("t", logging.INFO, "", 0, "tick", (), None)
        record.created = earlier
        line = formatter.format(record)
    assert json.loads(line)["ts"] == stamp
    assert stamp == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def test_the_fields_a_line_was_given_are_written_and_the_record_s_own_are_not() -> None:
    record = logging.getLogger("t").makeRecord(
        "t", logging.INFO, "", 0, "run finished", (), None,
        extra={"run_id": "r1", "attempt": 2, "": "unnamed", "_private": 1},
    )  # fmt: skip
    entry = json.loads(JsonFormatter().format(record))
    assert entry == entry | {"msg": "run finished", "level": "info", "run_id": "r1", "attempt": 2}
    assert set(entry) == {"ts", "level", "logger", "msg", "run_id", "attempt", ""}
