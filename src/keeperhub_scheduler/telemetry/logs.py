"""Structured logs: one JSON object per line, with secrets scrubbed before anything is written; and
``RepeatedFailure``, which logs a failure that repeats at every turn once, not at every turn."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# A record's own attributes come first in its ``__dict__`` (its constructor sets them; ``extra=``
# is added after): the fields are looked for among the rest only.
_OWN_ATTRIBUTES = len(logging.makeLogRecord({}).__dict__)
_REDACTED = "**********"
# A secret this long is masked wherever it appears. A shorter one is masked where it stands on
# its own (not inside a longer word or number): masking every "a" of a log for a one-letter
# password would make the log unreadable, and an "a" inside "scheduler" says nothing of it.
WHOLE_WORD_BELOW = 8
TRACEBACK_HEAD, TRACEBACK_TAIL = 2_000, 6_000


class Scrubber:
    """Masks every secret in a text: as given, and as it reads inside a JSON string (a quote,
    a backslash or a non-ASCII letter is escaped there, and would slip past the plain form)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets if secret for form in (secret, _json_form(secret))}
        patterns = [
            re.escape(form)
            if len(form) >= WHOLE_WORD_BELOW
            else rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])"
            for form in sorted(forms, key=len, reverse=True)  # a secret holding another: whole
        ]
        self._pattern = re.compile("|".join(patterns))  # used only once a form is found
        self._forms = tuple(forms)

    def __call__(self, text: str) -> str:
        # Most lines hold no secret: a substring test per form is many times cheaper than the
        # pattern (whose look-arounds defeat the regex engine's literal search), and a secret
        # that is there, whole word or not, is always found by it.
        for form in self._forms:
            if form in text:
                return self._pattern.sub(_REDACTED, text)
        return text


def _json_form(secret: str) -> str:
    return json.dumps(secret)[1:-1]


def _shortened(traceback: str) -> str:
    """A traceback that keeps the line under the 16 KiB at which Docker and Kubernetes split a
    log line in two (a database error through SQLAlchemy and a task group passes 26 KB): its
    start, where it began, and its end, the error itself."""
    if len(traceback) <= TRACEBACK_HEAD + TRACEBACK_TAIL:
        return traceback
    cut = len(traceback) - TRACEBACK_HEAD - TRACEBACK_TAIL
    return f"{traceback[:TRACEBACK_HEAD]}\n... {cut} characters ...\n{traceback[-TRACEBACK_TAIL:]}"


# Built once: ``json.dumps`` with an argument builds a new encoder for every line.
_ENCODE = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.scrub = Scrubber(secrets)
        self._second = -1  # the whole second ``_prefix`` is the ISO form of
        self._prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in islice(record.__dict__.items(), _OWN_ATTRIBUTES, None):
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = _shortened(self.formatException(record.exc_info))
        return self.scrub(_ENCODE(entry))

    def _timestamp(self, created: float) -> str:
        """UTC, to the millisecond (``2026-12-05T17:23:19.042+00:00``), exactly as
        ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`` writes it:
        rounded to the microsecond first, then cut (``record.msecs`` is cut from the float, and
        ``.001`` can read as ``.000`` there). The executor logs a line per run, so the second's
        part is formatted once a second, not once a line."""
        second = int(created)
        micro = round((created - second) * 1_000_000)
        if micro == 1_000_000:
            second, micro = second + 1, 0
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._second, self._prefix = second, moment.isoformat(timespec="seconds")[:-6]
        return f"{self._prefix}.{micro // 1000:03d}+00:00"


class TextFormatter(JsonFormatter):
    """For a terminal: the message, then the fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.scrub(line)


def configure(level: str = "INFO", fmt: str = "json", secrets: tuple[str, ...] = ()) -> None:
    """Send our logs to stderr in ``fmt``; quieten libraries that log every request."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    # No line of ours shows the thread, the process or the caller's source line, and the executor
    # logs a line per run: the record need not look them up (the logging HOWTO's optimisations).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    noisy_loggers = (
        "botocore",
        "aiobotocore",
        "httpx",
        "httpcore",
        "uvicorn.access",
        "aiosqlite",
        "alembic",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def describe(error: BaseException) -> str:
    """An error as one short line: its type and the first line of its message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


class RepeatedFailure:
    """The log of something retried until it works (a loop's pass, a connection).

    A failure is logged in full when it first happens (with its traceback, inside the one JSON
    line, when ``traceback``); the same failure again is only counted, and reminded of at most
    once per ``every`` seconds with the count; a different failure is logged in full at once;
    the first success after failures says how many there were. A database that stays down
    costs a line a minute, not a traceback a second.
    """

    def __init__(
        self,
        log: logging.Logger,
        name: str,
        *,
        every: float = 60.0,
        level: int = logging.ERROR,
        traceback: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.name = name
        self.every = every
        self.level = level
        self.traceback = traceback
        self.clock = clock
        self._current: str | None = None
        self._failures = 0  # since the last success
        self._since = 0.0  # the first of them
        self._unreported = 0  # repeats since the last line
        self._last_line = 0.0

    def failed(self, error: BaseException, **fields: object) -> None:
        what, now = describe(error), self.clock()
        if not self._failures:
            self._since = now
        self._failures += 1
        if what != self._current:
            self._current, self._unreported, self._last_line = what, 0, now
            exc_info = error if self.traceback else None
            extra = {"error": what} | fields
            self.log.log(self.level, f"{self.name} failed", exc_info=exc_info, extra=extra)
            return
        self._unreported += 1
        if now - self._last_line >= self.every:
            self.log.log(
                self.level,
                f"{self.name} still failing",
                extra={
                    "error": what,
                    "repeats": self._unreported,
                    "failures": self._failures,
                    "failing_for_seconds": round(now - self._since, 1),
                }
                | fields,
            )
            self._unreported, self._last_line = 0, now

    def succeeded(self) -> None:
        if self._failures:
            self.log.info(
                f"{self.name} recovered",
                extra={
                    "failures": self._failures,
                    "failing_for_seconds": round(self.clock() - self._since, 1),
                },
            )
        self._current, self._failures, self._unreported = None, 0, 0
