"""The queue message: what the dispatcher sends, what the executor accepts, and why it refuses
the rest (each reason goes to the dead-letter queue with the message)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeperhub_scheduler.runs import RunRef
from keeperhub_scheduler.transport.messages import (
    MAX_BODY_BYTES,
    InvalidMessageError,
    LegacyMessage,
    decode,
    encode,
    format_instant,
    parse_instant,
    sign,
)

KEY = b"signing-key"
WHEN = datetime(2026, 3, 29, 1, 30, 0, 123000, tzinfo=UTC)
MESSAGE = RunRef(
    run_id="01a2b3c4-0000-7000-8000-000000000000",
    workflow_id="wf_abc-123",
    schedule_id="sched_9",
    scheduled_for=WHEN,
)


def refused(body: str, attributes: dict[str, str], *, require: bool = True) -> str:
    with pytest.raises(InvalidMessageError) as caught:
        decode(body, attributes, KEY, require_signature=require)
    return caught.value.reason


def test_encode_writes_the_contract_body_and_attributes() -> None:
    body, attributes = encode(MESSAGE, KEY)

    assert json.loads(body) == {
        "workflowId": "wf_abc-123",
        "scheduleId": "sched_9",
        "triggerTime": "2026-03-29T01:30:00.123Z",
        "triggerType": "schedule",
        "runId": "01a2b3c4-0000-7000-8000-000000000000",
    }
    assert attributes == {
        "TriggerType": "schedule",
        "WorkflowId": "wf_abc-123",
        "Signature": sign(body, KEY),
    }
    assert attributes["Signature"].startswith("v1=")


# Ids KeeperHub never writes (quotes, backslashes, control characters, astral code points) are
# still escaped exactly as the JSON encoder escapes them: the body is what json.dumps writes.
@given(
    workflow_id=st.text(max_size=40),
    schedule_id=st.text(max_size=40),
    run_id=st.text(max_size=40),
    scheduled_for=st.datetimes(timezones=st.just(UTC)),
)
def test_the_body_is_what_json_dumps_writes(
    workflow_id: str, schedule_id: str, run_id: str, scheduled_for: datetime
) -> None:
    run = RunRef(
        run_id=run_id, workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=scheduled_for
    )
    legacy = LegacyMessage(
        workflow_id=workflow_id, schedule_id=schedule_id, scheduled_for=scheduled_for
    )
    payload = {
        "workflowId": workflow_id,
        "scheduleId": schedule_id,
        "triggerTime": format_instant(scheduled_for),
        "triggerType": "schedule",
    }
    assert encode(legacy, None)[0] == json.dumps(payload, separators=(",", ":"))
    assert encode(run, None)[0] == json.dumps(payload | {"runId": run_id}, separators=(",", ":"))


def test_a_signed_message_decodes_to_what_was_encoded() -> None:
    body, attributes = encode(MESSAGE, KEY)
    assert decode(body, attributes, KEY, require_signature=True) == MESSAGE


def test_without_a_key_nothing_is_signed_and_unsigned_messages_are_accepted() -> None:
    body, attributes = encode(MESSAGE, None)
    assert "Signature" not in attributes
    assert decode(body, attributes, None, require_signature=False) == MESSAGE


def test_the_originals_format_has_no_run_id_and_is_accepted() -> None:
    body = json.dumps(
        {"workflowId": "wf1", "scheduleId": "s1", "triggerTime": "2026-03-29T01:30:00.000Z",
         "triggerType": "schedule"}
    )  # fmt: skip
    message = decode(body, {}, KEY, require_signature=False)
    assert message == LegacyMessage(
        workflow_id="wf1", schedule_id="s1", scheduled_for=datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "malformed JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "body is not a JSON object"),
        ("{}", "field workflowId is missing or not a string"),
        ('{"workflowId": 7}', "field workflowId is missing or not a string"),
        ('{"workflowId": "../x"}', "field workflowId is not a valid id"),
        ('{"workflowId": "a/b"}', "field workflowId is not a valid id"),
        ('{"workflowId": "a%2Fb"}', "field workflowId is not a valid id"),
        ('{"workflowId": "w"}', "field scheduleId is missing or not a string"),
        ('{"workflowId": "w", "scheduleId": "s"}', "field triggerTime is missing or not a string"),
        (
            '{"workflowId": "w", "scheduleId": "s", "triggerTime": "yesterday"}',
            "field triggerTime is not an ISO 8601 instant: 'yesterday'",
        ),
        (
            '{"workflowId": "w", "scheduleId": "s", "triggerTime": "2026-03-29T01:30:00"}',
            "field triggerTime is not an ISO 8601 instant: '2026-03-29T01:30:00'",
        ),
        (
            '{"workflowId": "w", "scheduleId": "s", "triggerTime": "2026-03-29T01:30:00Z",'
            ' "triggerType": "webhook"}',
            "field triggerType must be 'schedule', not 'webhook'",
        ),
        (
            '{"workflowId": "w", "scheduleId": "s", "triggerTime": "2026-03-29T01:30:00Z",'
            ' "runId": "a b"}',
            "field runId is not a valid id",
        ),
    ],
)
def test_a_wrong_body_is_refused_with_a_reason(body: str, reason: str) -> None:
    assert refused(body, {"Signature": sign(body, KEY)}) == reason


def test_an_instant_before_year_one_in_utc_is_a_reason_not_an_overflow() -> None:
    body = '{"workflowId": "w", "scheduleId": "s", "triggerTime": "0001-01-01T00:00:00+14:00"}'
    assert refused(body, {"Signature": sign(body, KEY)}) == (
        "field triggerTime is not an ISO 8601 instant: '0001-01-01T00:00:00+14:00'"
    )
    assert refused(body, {}, require=False) == refused(body, {"Signature": sign(body, KEY)})


def test_a_nested_body_too_deep_to_parse_is_a_reason() -> None:
    body = "[" * 60_000
    assert refused(body, {"Signature": sign(body, KEY)}).startswith("malformed JSON: ")


def test_a_signed_message_without_a_run_id_is_never_legacy() -> None:
    body = '{"workflowId": "w", "scheduleId": "s", "triggerTime": "2026-03-29T01:30:00Z"}'
    assert refused(body, {"Signature": sign(body, KEY)}, require=False) == (
        "signed message without a runId (never a legacy message)"
    )


def test_legacy_messages_can_be_switched_off() -> None:
    body = '{"workflowId": "w", "scheduleId": "s", "triggerTime": "2026-03-29T01:30:00Z"}'
    with pytest.raises(InvalidMessageError, match="legacy messages are switched off"):
        decode(body, {}, None, require_signature=False, accept_legacy=False)


def test_a_body_too_large_is_refused_before_anything_else() -> None:
    body = "x" * (MAX_BODY_BYTES + 1)
    assert refused(body, {}) == f"body larger than {MAX_BODY_BYTES} bytes"


def test_signatures() -> None:
    body, attributes = encode(MESSAGE, KEY)
    forged = "signature does not match the body (forged or corrupted)"
    assert refused(body, {"Signature": sign(body, b"another key")}) == forged
    assert refused(body.replace("sched_9", "sched_8"), attributes) == forged
    assert refused(body, {"Signature": "v1=" + "0" * 64}) == forged
    assert refused(body, {}) == "unsigned message (a signature is required)"
    # Signed, but this executor holds no key to check it: refused only when one is required.
    with pytest.raises(InvalidMessageError, match="no signing key is configured"):
        decode(body, attributes, None, require_signature=True)
    assert decode(body, attributes, None, require_signature=False) == MESSAGE
    # Not required: an unsigned message passes, a wrongly signed one still does not.
    assert decode(body, {}, KEY, require_signature=False) == MESSAGE
    assert refused(body, {"Signature": sign(body, b"another key")}, require=False) == forged


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-03-29T01:30:00Z", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("2026-03-29T01:30:00.5z", datetime(2026, 3, 29, 1, 30, 0, 500000, tzinfo=UTC)),
        ("2026-03-29T03:30:00+02:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    ],
)
def test_instants_are_read_in_any_offset_and_held_in_utc(text: str, instant: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == instant
    assert parsed.utcoffset() == timedelta(0)


def test_instants_are_written_like_javascript_and_keep_microseconds() -> None:
    assert format_instant(WHEN) == "2026-03-29T01:30:00.123Z"
    assert format_instant(WHEN.replace(microsecond=123456)) == "2026-03-29T01:30:00.123456Z"
    berlin = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert format_instant(berlin) == "2026-03-29T01:30:00.123Z"
    assert parse_instant(format_instant(WHEN)) == WHEN
