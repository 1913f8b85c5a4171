"""The shapes of the management operations: what they accept and what they answer.

These pydantic models are the contract shared by the REST API (request and response bodies, and so
the OpenAPI schema), the CLI (``--json`` prints exactly these) and the management functions. Every
bound that protects the scheduler (a catch-up window, a jitter, a page size) is declared here, so
it shows in the schema and a violation answers 422 naming the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from keeperhub_scheduler import runs
from keeperhub_scheduler.timing import MAX_INTERVAL_SECONDS, MAX_JITTER_SECONDS

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"  # KeeperHub's nanoid-like ids, ours (hex, UUID)
# A page's last item: microseconds since 1970 UTC, a dot, its id (see management.pages).
CURSOR_PATTERN = r"^-?[0-9]{1,19}\.[A-Za-z0-9_-]{1,128}$"
MAX_CATCHUP_WINDOW_SECONDS = 31 * 24 * 3600
MAX_CATCHUP_RUNS = 10_000
MAX_PAGE_SIZE = 500
MAX_PREVIEW_COUNT = 100
MAX_BACKFILL_RUNS = 1000
# Instants are dated 1970 to 8999 as written (the schema's pattern can say so exactly; in UTC an
# offset may move them up to a day either way), far from datetime's ends and any database's.
FIRST_YEAR, LAST_YEAR = 1970, 8999
YEAR_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"
# Free text: no NUL (PostgreSQL text cannot hold it). Stated for the schema; checked below.
NO_NUL_PATTERN = r"^[^\u0000]*$"


def _words(vocabulary: type[StrEnum]) -> Any:
    """The vocabulary's words as a ``Literal``: the schema lists them inline, and a wrong one
    answers 422 with the list."""
    return Literal[tuple(member.value for member in vocabulary)]


if TYPE_CHECKING:
    MisfirePolicyWord: TypeAlias = str
    OverlapPolicyWord: TypeAlias = str
    RunStatusWord: TypeAlias = str
    RunKindWord: TypeAlias = str
else:
    MisfirePolicyWord = _words(runs.MisfirePolicy)
    OverlapPolicyWord = _words(runs.OverlapPolicy)
    RunStatusWord = _words(runs.RunStatus)
    RunKindWord = _words(runs.RunKind)


def _plain_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded: refuse both here,
    # where the answer is a 422 naming the field, rather than in the driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _iso_only(value: Any) -> Any:
    # Pydantic would read a number (or a numeric string) as a Unix timestamp: a typo such as
    # ``until=2026`` must be an error, not the first seconds of 1970.
    numeric = isinstance(value, str) and re.fullmatch(r"\s*[-+]?[\d.]+([eE][-+]?\d+)?\s*", value)
    if isinstance(value, int | float) or numeric:
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-03-29T09:00:00+02:00")
    return value


def _in_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:  # the year as written, before UTC
        raise ValueError(f"must be dated between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31")
    return value.astimezone(UTC)


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 30.0 as an integer, so must we; "30" and true stay errors (strict).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _cursor(value: str) -> str:
    if not re.fullmatch(CURSOR_PATTERN, value):
        raise ValueError("cursor is not one this API handed out")
    return value


_PLAIN = AfterValidator(_plain_text)  # after the length, so its errors say "characters"
_NO_NUL = Field(json_schema_extra={"pattern": NO_NUL_PATTERN})


Identifier = Annotated[str, Field(pattern=ID_PATTERN, examples=["wf_nightly_report"])]
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_only),
    AfterValidator(_in_range),
    Field(
        description="ISO 8601 with a UTC offset, e.g. 2026-03-29T09:00:00+02:00, dated"
        f" {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31",
        json_schema_extra={"pattern": YEAR_PATTERN},
    ),
]
Note = Annotated[str, StringConstraints(max_length=1000), _PLAIN, _NO_NUL]
CronText = Annotated[
    str,
    StringConstraints(max_length=1024),
    _PLAIN,
    _NO_NUL,
    Field(description="5 or 6 fields, or a macro", examples=["0 9 * * 1-5"]),
]
ZoneName = Annotated[
    str,
    StringConstraints(max_length=64),
    _PLAIN,
    _NO_NUL,
    Field(description="IANA time zone", examples=["Europe/Berlin"]),
]
WorkflowName = Annotated[str, StringConstraints(min_length=1, max_length=200), _PLAIN, _NO_NUL]
Cursor = Annotated[
    str,
    AfterValidator(_cursor),
    Field(
        description="The next_cursor of the page before: the last item's instant in"
        " microseconds since 1970-01-01 UTC, a dot, and its id",
        json_schema_extra={"pattern": CURSOR_PATTERN},
        examples=["1767225600000000.wf_nightly_report"],
    ),
]
# Body numbers and flags are strict: ``"enabled": 0`` or ``"jitter_seconds": "30"`` is a mistake
# to report, not to guess at. (Query parameters are text, and are converted as usual.)
Flag = Annotated[bool, Field(strict=True)]
_WHOLE = BeforeValidator(_whole_number)
IntervalSeconds = Annotated[int, Field(strict=True, ge=1, le=MAX_INTERVAL_SECONDS), _WHOLE]
CatchupWindow = Annotated[int, Field(strict=True, ge=0, le=MAX_CATCHUP_WINDOW_SECONDS), _WHOLE]
CatchupRuns = Annotated[int, Field(strict=True, ge=1, le=MAX_CATCHUP_RUNS), _WHOLE]
JitterSeconds = Annotated[int, Field(strict=True, ge=0, le=MAX_JITTER_SECONDS), _WHOLE]
PreviewCount = Annotated[int, Field(strict=True, ge=1, le=MAX_PREVIEW_COUNT), _WHOLE]

# A timing is a cron expression or an interval, never both; anchor_at belongs to an interval.
CRON_OR_INTERVAL: dict[str, Any] = {
    "oneOf": [
        {
            "title": "cron",
            "required": ["cron_expression"],
            "properties": {
                "cron_expression": {"type": "string"},
                "interval_seconds": {"type": "null"},
                "anchor_at": {"type": "null"},
            },
        },
        {
            "title": "interval",
            "required": ["interval_seconds"],
            "properties": {
                "interval_seconds": {"type": "integer"},
                "cron_expression": {"type": "null"},
            },
        },
    ]
}


class Input(BaseModel):
    """A request's body or query: unknown fields are an error (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------
class ScheduleCreate(Input):
    model_config = ConfigDict(json_schema_extra=CRON_OR_INTERVAL)

    workflow_id: Identifier
    cron_expression: CronText | None = Field(None, description="Give this or interval_seconds")
    interval_seconds: IntervalSeconds | None = Field(None, description="Every N seconds")
    anchor_at: Instant | None = Field(None, description="Interval start (default: the epoch)")
    timezone: ZoneName = "UTC"
    enabled: Flag = True
    misfire_policy: MisfirePolicyWord = runs.MisfirePolicy.FIRE_ONCE.value
    catchup_window_seconds: CatchupWindow = 86_400
    max_catchup_runs: CatchupRuns = 100
    overlap_policy: OverlapPolicyWord = runs.OverlapPolicy.ALLOW.value
    jitter_seconds: JitterSeconds = 0
    start_at: Instant | None = None
    end_at: Instant | None = None


class ScheduleUpdate(Input):
    """Only the fields given change. A new cron_expression makes an interval schedule a cron one
    and vice versa; ``null`` clears anchor_at, start_at and end_at, and leaves the rest as is."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["cron_expression", "interval_seconds"],
                "properties": {
                    "cron_expression": {"type": "string"},
                    "interval_seconds": {"type": "integer"},
                },
            }
        }
    )

    cron_expression: CronText | None = None
    interval_seconds: IntervalSeconds | None = None
    anchor_at: Instant | None = None
    timezone: ZoneName | None = None
    enabled: Flag | None = None
    misfire_policy: MisfirePolicyWord | None = None
    catchup_window_seconds: CatchupWindow | None = None
    max_catchup_runs: CatchupRuns | None = None
    overlap_policy: OverlapPolicyWord | None = None
    jitter_seconds: JitterSeconds | None = None
    start_at: Instant | None = None
    end_at: Instant | None = None


class PauseRequest(Input):
    note: Note | None = Field(None, description="Why; shown with the schedule")
    until: Instant | None = Field(None, description="Resume by itself at this instant")


class TriggerRequest(Input):
    reason: Note | None = Field(None, description="Recorded as the run's note")
    ignore_overlap: Flag = Field(False, description="Run even if the overlap policy says skip")


class BackfillRequest(Input):
    start: Instant = Field(description="First occurrence considered (inclusive)")
    end: Instant = Field(description="Last occurrence considered (inclusive), not in the future")
    reason: Note | None = None
    ignore_overlap: Flag = False


class PreviewRequest(Input):
    model_config = ConfigDict(json_schema_extra=CRON_OR_INTERVAL)

    cron_expression: CronText | None = None
    interval_seconds: IntervalSeconds | None = None
    anchor_at: Instant | None = None
    timezone: ZoneName = "UTC"
    count: PreviewCount = 10
    after: Instant | None = Field(None, description="Start after this instant (default: now)")
    schedule_id: Identifier | None = Field(
        None, description="Whose id picks the values of H (without one, H picks as for id '')"
    )


class WorkflowCreate(Input):
    id: Identifier
    name: WorkflowName
    enabled: Flag = True


class WorkflowUpdate(Input):
    name: WorkflowName | None = None
    enabled: Flag | None = None


class WorkflowSync(Input):
    nodes: list[Any] = Field(description="The workflow's nodes, as KeeperHub stores them")


class ScheduleQuery(Input):
    workflow_id: Identifier | None = None
    enabled: bool | None = None
    paused: bool | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 50
    cursor: Cursor | None = None


class RunQuery(Input):
    status: list[RunStatusWord] | None = None
    kind: RunKindWord | None = None
    workflow_id: Identifier | None = None
    since: Instant | None = Field(None, description="scheduled_for at or after")
    until: Instant | None = Field(None, description="scheduled_for before")
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 50
    cursor: Cursor | None = None


# --- answers ----------------------------------------------------------------------------------
class FireTime(BaseModel):
    utc: datetime
    local: datetime = Field(description="The same instant in the schedule's zone")
    utc_offset: str = Field(examples=["+02:00"])
    offset_changed: bool = Field(description="The UTC offset differs from the previous fire's")
    dst_note: str | None = Field(None, description="Why this fire is not an ordinary match")


class Run(BaseModel):
    id: str
    schedule_id: str
    workflow_id: str
    kind: str
    status: str
    scheduled_for: datetime = Field(description="The occurrence (a manual run: when asked)")
    scheduled_until: datetime | None = Field(None, description="End of a range of skips")
    occurrences: int | None = Field(None, description="Occurrences a skip row stands for")
    due_at: datetime
    skip_reason: str | None = None
    note: str | None = None
    ignore_overlap: bool = False
    attempts: int = 0
    created_at: datetime
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    http_status: int | None = None
    error: str | None = None


class Schedule(BaseModel):
    id: str
    workflow_id: str
    cron_expression: str | None = Field(description="None for an interval schedule")
    interval_seconds: int | None = None
    anchor_at: datetime | None = None
    timezone: str
    description: str | None = Field(description="Plain English, e.g. 'At 09:00'")
    problem: str | None = Field(None, description="Why the stored timing cannot be used")
    enabled: bool
    paused: bool
    paused_at: datetime | None = None
    paused_until: datetime | None = None
    paused_note: str | None = None
    misfire_policy: str
    catchup_window_seconds: int
    max_catchup_runs: int
    overlap_policy: str
    jitter_seconds: int
    start_at: datetime | None = None
    end_at: datetime | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    run_count: int = 0
    created_at: datetime
    updated_at: datetime


class ScheduleDetail(Schedule):
    next_fire_times: list[FireTime] = Field(description="The next 5 occurrences")
    recent_runs: list[Run] = Field(description="The last 5 runs, newest first")


class SchedulePage(BaseModel):
    items: list[Schedule]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


class RunPage(BaseModel):
    items: list[Run]
    next_cursor: str | None = None


class BackfillResult(BaseModel):
    schedule_id: str
    start: datetime
    end: datetime
    occurrences: int = Field(description="Occurrences between start and end")
    created: int = Field(description="Runs created now")
    existing: int = Field(description="Occurrences that already had a run")


class BackfillOccurrence(BaseModel):
    scheduled_for: datetime
    existing_run_id: str | None = Field(None, description="The run it has already (kept)")
    existing_status: str | None = None


class BackfillPreview(BaseModel):
    schedule_id: str
    start: datetime
    end: datetime
    occurrences: list[BackfillOccurrence] = Field(description="Every occurrence in the range")
    would_create: int = Field(description="Occurrences without a run: the runs a backfill adds")


class Preview(BaseModel):
    description: str
    timezone: str
    fire_times: list[FireTime]


class Workflow(BaseModel):
    id: str
    name: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class SyncOutcome(BaseModel):
    action: Literal["created", "updated", "unchanged", "deleted", "none"]
    schedule: Schedule | None


class OldestPending(BaseModel):
    run_id: str
    schedule_id: str
    due_at: datetime
    age_seconds: float


class DispatchLag(BaseModel):
    window_seconds: int = 300
    samples: int
    p50_seconds: float | None
    p99_seconds: float | None


class ScheduleCounts(BaseModel):
    total: int
    enabled: int
    paused: int


class QueueDepth(BaseModel):
    visible: int | None = None
    in_flight: int | None = None
    dlq_visible: int | None = None
    dlq_in_flight: int | None = None
    error: str | None = Field(None, description="Why the queue could not be asked")


class Status(BaseModel):
    database_time: datetime
    runs_by_status: dict[str, int]
    oldest_pending: OldestPending | None
    dispatch_lag: DispatchLag
    failures_last_hour: int = Field(description="Runs failed or dead in the last hour")
    schedules: ScheduleCounts
    queue: QueueDepth | None = Field(description="None when no SQS queue is configured")


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorBody(BaseModel):
    detail: list[FieldError]


class ErrorBody(BaseModel):
    detail: str


def field_name(location: tuple[int | str, ...]) -> str:
    """``("body", "nodes", 0)`` -> ``"nodes.0"``: where a pydantic error is, as users name it."""
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts[:1]
    return ".".join(parts) or "body"


def error_message(message: str) -> str:
    """Pydantic's message without its "Value error, " prefix, safe to encode as UTF-8."""
    message = re.sub(r"^(Value|Assertion) error, ", "", message)
    return message.encode("utf-8", "backslashreplace").decode("utf-8")
