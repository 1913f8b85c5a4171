"""The dead-letter copy of a message, cut to what SQS accepts, saying what it left out.

SQS refuses a message with more than 10 attributes, an empty attribute value, or a body and
attributes over 256 KiB together. A message we must dead-letter can be any of those (a forger's,
one with a Binary attribute); a copy SQS refuses would leave it looping on the main queue. So
the copy always carries the reason and the original message id, then as many of the original's
String attributes as fit (ours first), and ``DroppedAttributes`` names the rest; a body too long
to fit beside them is cut, and ``BodyTruncated`` says from how many bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from keeperhub_scheduler.transport.base import Delivery

MAX_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 256 * 1024
REASON_CHARS = 1000
DROPPED_CHARS = 1000
# Attributes the executor and an operator read first, kept before any other.
PREFERRED = ("TriggerType", "WorkflowId", "Signature")
SLACK_BYTES = 64  # the data-type names SQS counts, with room to spare


@dataclass(frozen=True)
class DeadLetterCopy:
    body: str
    attributes: dict[str, str]  # all String


def dead_letter_copy(
    delivery: Delivery, reason: str, limit: int = MAX_MESSAGE_BYTES
) -> DeadLetterCopy:
    attributes = _identity(delivery, reason)
    dropped = list(delivery.unreadable_attributes)
    ordered = sorted(delivery.attributes, key=lambda name: (name not in PREFERRED, name))
    room = MAX_ATTRIBUTES - len(attributes) - 2  # DroppedAttributes and BodyTruncated
    for name in ordered:
        value = delivery.attributes[name]
        if name in attributes or not value or room == 0:
            dropped.append(name)
            continue
        attributes[name] = value
        room -= 1
    if dropped:
        attributes["DroppedAttributes"] = ", ".join(sorted(dropped))[:DROPPED_CHARS]
    return _fit_body(delivery.body or "(empty)", attributes, limit)


def _fit_body(body: str, attributes: dict[str, str], limit: int) -> DeadLetterCopy:
    used = sum(len(n.encode()) + len(v.encode()) + SLACK_BYTES for n, v in attributes.items())
    note_bytes = len(b"BodyTruncated") + 40 + SLACK_BYTES
    encoded = body.encode()
    if len(encoded) + used <= limit:
        return DeadLetterCopy(body, attributes)
    keep = max(0, limit - used - note_bytes)
    cut = encoded[:keep].decode(errors="ignore")  # never half a character
    attributes = attributes | {"BodyTruncated": f"from {len(encoded)} bytes"}
    return DeadLetterCopy(cut or "(empty)", attributes)


def minimal_copy(delivery: Delivery, reason: str) -> DeadLetterCopy:
    """The last resort when SQS refused the full copy: the reason, the id, a short body."""
    attributes = _identity(delivery, reason) | {"BodyTruncated": "the full copy was refused"}
    body = delivery.body.encode()[:4096].decode(errors="ignore")
    return DeadLetterCopy(body or "(empty)", attributes)


def _identity(delivery: Delivery, reason: str) -> dict[str, str]:
    """What every copy carries: why it is here, and which message it was."""
    return {
        "DeadLetterReason": reason[:REASON_CHARS] or "unknown",
        "OriginalMessageId": delivery.message_id or "unknown",
    }
