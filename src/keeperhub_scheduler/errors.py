"""The exceptions the scheduler raises at its boundaries.

Every error a caller can cause by what it sends carries the name of the field that is wrong, so the
CLI can print one line and the API can answer 422 with ``{"field": ..., "message": ...}``.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base class of every error the scheduler raises on purpose."""


class InvalidScheduleError(SchedulerError, ValueError):
    """A cron expression, time zone, interval or schedule option that cannot be used.

    ``field`` names what is wrong (``"minute"``, ``"timezone"``, ``"interval_seconds"`` ...);
    ``str(error)`` is a sentence a user can act on, e.g. ``minute 60 is out of range 0-59``.
    """

    def __init__(self, message: str, *, field: str = "cron_expression") -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFoundError(SchedulerError, LookupError):
    """A schedule, workflow or run that does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class ConflictError(SchedulerError):
    """A request that contradicts the current state (e.g. resuming a schedule not paused)."""


class PortUnavailableError(SchedulerError, OSError):
    """A port the process must listen on is taken (or not ours to bind)."""
