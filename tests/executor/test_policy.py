"""The executor's timing rules: lease against visibility and heartbeat, and retry backoff."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from keeperhub_scheduler.config import load_settings
from keeperhub_scheduler.executor.handle import ExecutionPolicy
from keeperhub_scheduler.processes import build_executor
from keeperhub_scheduler.transport.database import DatabaseTransport
from keeperhub_scheduler.transport.sqs import MAX_VISIBILITY_SECONDS, SqsTransport


@pytest.mark.parametrize(("handoff", "visibility"), [(1, 5), (2, 30), (5, 6), (60, 30)])
def test_a_heartbeat_extends_in_short_steps_and_a_lease_outlasts_two_beats(
    handoff: int, visibility: int
) -> None:
    policy = ExecutionPolicy(
        None, require_signature=False, visibility_timeout=visibility, handoff_seconds=handoff
    )
    lease = policy.lease.total_seconds()

    # A dead executor's message is back within the hand-off, not the full visibility timeout...
    assert policy.step_seconds == min(handoff, visibility)
    # ...and its run's lease has lapsed by then, so the redelivered copy takes it over;
    assert lease < policy.step_seconds
    # a live one's never lapses between beats, even when one beat fails.
    assert lease + 1e-5 >= 2 * policy.heartbeat_seconds


@pytest.mark.parametrize(("handoff", "visibility"), [(1, 5), (2, 30), (5, 6), (60, 30)])
def test_a_claim_lease_ends_before_the_hand_off_and_is_extended_before_it_lapses(
    handoff: int, visibility: int
) -> None:
    policy = ExecutionPolicy(
        None, require_signature=False, visibility_timeout=visibility, handoff_seconds=handoff
    )
    lease = policy.lease.total_seconds()

    assert lease < min(handoff, visibility)  # a copy redelivered after a death takes the run
    assert policy.heartbeat_seconds * 2 < lease  # a failed first beat is tried again in time


@pytest.mark.parametrize(
    ("handoff", "visibility", "receive"),
    [(1, 5, 1), (2, 30, 1), (3, 30, 2), (5, 6, 3), (60, 30, 15)],
)
def test_a_received_message_comes_back_within_half_a_step_and_is_extended_before_that(
    handoff: int, visibility: int, receive: int
) -> None:
    """Before its claim only the claim guards a message, so it is received for half a step: a
    killed executor's received messages (its open long polls too) come back that soon. The first
    beat, counted from the receive, comes with room to spare before they would."""
    policy = ExecutionPolicy(
        None, require_signature=False, visibility_timeout=visibility, handoff_seconds=handoff
    )

    assert policy.receive_seconds == receive
    assert policy.receive_seconds <= policy.step_seconds
    assert policy.heartbeat_seconds * 2 <= policy.receive_seconds


def test_the_executor_receives_for_the_policy_s_receive_hand_off() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/unused"
    settings = load_settings(database_url=url)
    engine = create_async_engine(url)  # never connects here
    executor, _ = build_executor(settings, engine, DatabaseTransport(engine, None))

    assert executor.receive_visibility == executor.handler.policy.receive_seconds == 1
    assert executor.handler.policy.step_seconds == 2


def test_backoff_grows_with_jitter_within_its_bounds_in_whole_seconds() -> None:
    policy = ExecutionPolicy(None, require_signature=False, retry_base=2.0, retry_max=60.0)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (30, 60)]:
        delays = {policy.backoff(attempt, None) for _ in range(200)}
        assert all(isinstance(delay, int) for delay in delays)
        assert min(delays) >= max(1, ceiling // 2)
        assert max(delays) <= ceiling


@pytest.mark.parametrize("retry_after", [0.2, 3.0, 3.4, 100.0])
def test_backoff_never_waits_less_than_retry_after(retry_after: float) -> None:
    policy = ExecutionPolicy(None, require_signature=False, retry_base=1.0, retry_max=2.0)
    assert all(policy.backoff(1, retry_after) >= retry_after for _ in range(50))


def test_backoff_stays_within_what_sqs_can_hide_a_message_for() -> None:
    assert SqsTransport.max_delay_seconds == MAX_VISIBILITY_SECONDS == 12 * 3600
    policy = ExecutionPolicy(
        None, require_signature=False, max_delay_seconds=SqsTransport.max_delay_seconds
    )
    assert policy.backoff(1, 10 * 86_400.0) == MAX_VISIBILITY_SECONDS
    # The default, and the database transport's, are the same ceiling: both modes retry alike.
    default = ExecutionPolicy(None, require_signature=False)
    assert (
        default.max_delay_seconds == DatabaseTransport.max_delay_seconds == MAX_VISIBILITY_SECONDS
    )
