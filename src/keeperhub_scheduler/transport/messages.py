"""The queue message: one run of one schedule, as JSON, optionally signed.

Body (DESIGN.md's contract, compatible with the original dispatcher's):
``{"workflowId", "scheduleId", "triggerTime", "triggerType": "schedule", "runId"}``.
Attributes: ``TriggerType``, ``WorkflowId`` and, when a signing key is set, ``Signature``:
``v1=<hex HMAC-SHA256 of the body>``. A message names one run (``runs.RunRef``). The original's
messages have no ``runId``; ``decode`` answers them as a ``LegacyMessage``, which the executor maps
to the run of (scheduleId, triggerTime).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

from keeperhub_scheduler.errors import SchedulerError
from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.transport.base import OutgoingMessage

MAX_BODY_BYTES = 64 * 1024
SIGNATURE_VERSION = "v1"
# KeeperHub's ids are nanoid-like; ours are hex/uuid. Anything else could reach a URL path.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TRIGGER_TYPE = "schedule"  # the only one the contract has


class InvalidMessageError(SchedulerError):
    """A message that must never be executed; ``reason`` goes to the dead-letter queue with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyMessage:
    """A message in the original dispatcher's format: a schedule's occurrence, no run id."""

    workflow_id: str
    schedule_id: str
    scheduled_for: datetime  # the message's triggerTime


@lru_cache(maxsize=4096)
def format_instant(instant: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: milliseconds like JavaScript's, microseconds when present.

    Remembered: the runs of one pass share a few instants (the top of the minute, say)."""
    instant = instant.astimezone(UTC)
    if instant.microsecond % 1000 == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError("no time zone")
    return instant.astimezone(UTC)


def outgoing(run: RunRef, signing_key: bytes | None) -> OutgoingMessage:
    """The message of a run, ready for a transport's ``send``."""
    body, attributes = encode(run, signing_key)
    return OutgoingMessage(run.run_id, body, attributes)


def encode(
    message: RunRef | LegacyMessage, signing_key: bytes | None
) -> tuple[str, dict[str, str]]:
    """The body and the message attributes to send."""
    body = _body(message)
    attributes = {"TriggerType": TRIGGER_TYPE, "WorkflowId": message.workflow_id}
    if signing_key:
        attributes["Signature"] = sign(body, signing_key)
    return body, attributes


def _body(message: RunRef | LegacyMessage) -> str:
    """The body as ``json.dumps(payload, separators=(",", ":"))`` writes it (a test holds the two
    equal), joined by hand: the dispatcher writes thousands a second, and walking a dict through
    the encoder cost as much as the rest of the message. Each string is escaped by the encoder's
    own function."""
    body = (
        f'{{"workflowId":{_quoted(message.workflow_id)},"scheduleId":{_quoted(message.schedule_id)}'
        f',"triggerTime":{_quoted(format_instant(message.scheduled_for))},"triggerType":"{TRIGGER_TYPE}"'
    )
    if isinstance(message, RunRef):
        return f'{body},"runId":{_quoted(message.run_id)}}}'
    return body + "}"


def sign(body: str, signing_key: bytes) -> str:
    keyed = _keyed(signing_key).copy()
    keyed.update(body.encode())
    return f"{SIGNATURE_VERSION}={keyed.hexdigest()}"


@lru_cache(maxsize=4)
def _keyed(signing_key: bytes) -> hmac.HMAC:
    """The HMAC with the key already taken in: a copy per message skips the key's setup, a
    third of a signature's cost (one key per process; a test may use a few)."""
    return hmac.new(signing_key, digestmod=hashlib.sha256)


def decode(
    body: str,
    attributes: dict[str, str],
    signing_key: bytes | None,
    *,
    require_signature: bool,
    accept_legacy: bool = True,
) -> RunRef | LegacyMessage:
    """Check and parse a received message, or raise ``InvalidMessageError`` with the reason.

    Every way a body can fail to parse is a reason, never another exception: a poison message
    must end in the dead-letter queue, not in a traceback on every receive.
    """
    if len(body.encode(errors="replace")) > MAX_BODY_BYTES:
        raise InvalidMessageError(f"body larger than {MAX_BODY_BYTES} bytes")
    signature = attributes.get("Signature")
    _verify_signature(body, signature, signing_key, require_signature)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        detail = error.msg if isinstance(error, json.JSONDecodeError) else type(error).__name__
        raise InvalidMessageError(f"malformed JSON: {detail}") from None
    if not isinstance(payload, dict):
        raise InvalidMessageError("body is not a JSON object")
    message = _parse_payload(payload)
    if isinstance(message, LegacyMessage):
        # Only the original dispatcher sends messages without a runId, and it never signs: a
        # signed one was made by someone holding our key for another purpose, so it is refused.
        if signature is not None:
            raise InvalidMessageError("signed message without a runId (never a legacy message)")
        if not accept_legacy:
            raise InvalidMessageError(
                "message in the original dispatcher's format (no runId) and legacy messages "
                "are switched off (SCHEDULER_ACCEPT_LEGACY_MESSAGES=false)"
            )
    return message


def _verify_signature(
    body: str, signature: str | None, signing_key: bytes | None, require_signature: bool
) -> None:
    if signature is None:
        if require_signature:
            raise InvalidMessageError("unsigned message (a signature is required)")
        return
    if signing_key is None:
        # We cannot check it; accepting it unchecked would make the signature meaningless.
        if require_signature:
            raise InvalidMessageError("signed message but no signing key is configured")
        return
    if not hmac.compare_digest(signature.encode(), sign(body, signing_key).encode()):
        raise InvalidMessageError("signature does not match the body (forged or corrupted)")


def _parse_payload(payload: dict[str, Any]) -> RunRef | LegacyMessage:
    workflow_id = _identifier(payload, "workflowId")
    schedule_id = _identifier(payload, "scheduleId")
    raw_time = payload.get("triggerTime")
    if not isinstance(raw_time, str):
        raise InvalidMessageError("field triggerTime is missing or not a string")
    try:
        trigger_time = parse_instant(raw_time)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise InvalidMessageError(
            f"field triggerTime is not an ISO 8601 instant: {raw_time[:64]!r}"
        ) from None
    trigger_type = payload.get("triggerType", TRIGGER_TYPE)
    if trigger_type != TRIGGER_TYPE:
        raise InvalidMessageError(
            f"field triggerType must be '{TRIGGER_TYPE}', not {str(trigger_type)[:32]!r}"
        )
    if "runId" not in payload:
        return LegacyMessage(
            workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=trigger_time
        )
    run_id = _identifier(payload, "runId")
    return RunRef(
        run_id=run_id, workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=trigger_time
    )


def _identifier(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise InvalidMessageError(f"field {name} is missing or not a string")
    if not ID_PATTERN.fullmatch(value):
        raise InvalidMessageError(f"field {name} is not a valid id")
    return value
