"""The queue message: one run of one schedule, as JSON, optionally signed.

Body (DESIGN.md's contract, compatible with the original dispatcher's):
``{"workflowId", "scheduleId", "triggerTime", "triggerType": "schedule", "runId"}``.
Attributes: ``TriggerType``, ``WorkflowId`` and, when a signing key is set, ``Signature``:
``v1=<hex HMAC-SHA256 of the body>``. The original's messages have no ``runId``; ``decode``
accepts them and the executor maps them to the run of (scheduleId, triggerTime).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keeperhub_scheduler.errors import SchedulerError

MAX_BODY_BYTES = 64 * 1024
SIGNATURE_VERSION = "v1"
# KeeperHub's ids are nanoid-like; ours are hex/uuid. Anything else could reach a URL path.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class InvalidMessageError(SchedulerError):
    """A message that must never be executed; ``reason`` goes to the dead-letter queue with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RunMessage:
    workflow_id: str
    schedule_id: str
    trigger_time: datetime
    run_id: str | None  # None: a message in the original dispatcher's format
    trigger_type: str = "schedule"


def format_instant(instant: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: milliseconds like JavaScript's, microseconds when present."""
    instant = instant.astimezone(UTC)
    if instant.microsecond % 1000 == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError("no time zone")
    return instant.astimezone(UTC)


def encode(message: RunMessage, signing_key: bytes | None) -> tuple[str, dict[str, str]]:
    """The body and the message attributes to send."""
    payload: dict[str, str] = {
        "workflowId": message.workflow_id,
        "scheduleId": message.schedule_id,
        "triggerTime": format_instant(message.trigger_time),
        "triggerType": message.trigger_type,
    }
    if message.run_id is not None:
        payload["runId"] = message.run_id
    body = json.dumps(payload, separators=(",", ":"))
    attributes = {"TriggerType": message.trigger_type, "WorkflowId": message.workflow_id}
    if signing_key:
        attributes["Signature"] = sign(body, signing_key)
    return body, attributes


def sign(body: str, signing_key: bytes) -> str:
    digest = hmac.new(signing_key, body.encode(), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def decode(
    body: str,
    attributes: dict[str, str],
    signing_key: bytes | None,
    *,
    require_signature: bool,
) -> RunMessage:
    """Check and parse a received message, or raise ``InvalidMessageError`` with the reason."""
    if len(body.encode()) > MAX_BODY_BYTES:
        raise InvalidMessageError(f"body larger than {MAX_BODY_BYTES} bytes")
    _verify_signature(body, attributes.get("Signature"), signing_key, require_signature)
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidMessageError(f"malformed JSON: {error.msg}") from None
    if not isinstance(payload, dict):
        raise InvalidMessageError("body is not a JSON object")
    return _parse_payload(payload)


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


def _parse_payload(payload: dict[str, Any]) -> RunMessage:
    workflow_id = _identifier(payload, "workflowId")
    schedule_id = _identifier(payload, "scheduleId")
    raw_time = payload.get("triggerTime")
    if not isinstance(raw_time, str):
        raise InvalidMessageError("field triggerTime is missing or not a string")
    try:
        trigger_time = parse_instant(raw_time)
    except ValueError:
        raise InvalidMessageError(
            f"field triggerTime is not an ISO 8601 instant: {raw_time[:64]!r}"
        ) from None
    trigger_type = payload.get("triggerType", "schedule")
    if trigger_type != "schedule":
        raise InvalidMessageError(
            f"field triggerType must be 'schedule', not {str(trigger_type)[:32]!r}"
        )
    run_id = _identifier(payload, "runId") if "runId" in payload else None
    return RunMessage(workflow_id, schedule_id, trigger_time, run_id)


def _identifier(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise InvalidMessageError(f"field {name} is missing or not a string")
    if not ID_PATTERN.fullmatch(value):
        raise InvalidMessageError(f"field {name} is not a valid id")
    return value
