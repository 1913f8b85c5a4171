"""Execution slots: a receive loop asks the queue for messages only once it can start a full
batch of them, and waiting for that costs nothing while runs end one by one."""

from __future__ import annotations

import asyncio

from keeperhub_scheduler.executor.worker import Slots
from keeperhub_scheduler.telemetry.health import Heartbeat


class CountingHeartbeat(Heartbeat):
    """Counts the turns of a waiting loop: each one beats."""

    def __init__(self) -> None:
        super().__init__(max_silence=60)
        self.beats = 0

    def beat(self) -> None:
        self.beats += 1
        super().beat()


async def test_a_loop_waits_for_a_full_batch_and_goes_on_once_it_is_free() -> None:
    slots, stop, heartbeat = Slots(50), asyncio.Event(), CountingHeartbeat()
    assert await slots.reserve(10, stop, heartbeat) == 10
    assert await slots.reserve(40, stop, heartbeat) == 40  # all 50 busy now

    waiting = asyncio.create_task(slots.reserve(10, stop, heartbeat))
    for _ in range(9):
        await slots.release(1)
        await asyncio.sleep(0)
    assert not waiting.done()  # nine free: not a batch yet

    await slots.release(1)
    assert await asyncio.wait_for(waiting, 1) == 10
    assert (slots.free, slots.busy) == (0, 50)


async def test_runs_ending_one_by_one_do_not_wake_a_loop_that_cannot_go_on() -> None:
    slots, stop, heartbeat = Slots(10), asyncio.Event(), CountingHeartbeat()
    await slots.reserve(10, stop, heartbeat)
    waiting = asyncio.create_task(slots.reserve(10, stop, heartbeat))
    await asyncio.sleep(0)
    assert heartbeat.beats == 1  # the first turn of the wait

    for _ in range(9):
        await slots.release(1)
        await asyncio.sleep(0)
    assert heartbeat.beats == 1  # nobody woken for a slot it could not use

    await slots.release(1)
    assert await asyncio.wait_for(waiting, 1) == 10


async def test_a_waiting_loop_returns_nothing_once_stopped() -> None:
    slots, stop, heartbeat = Slots(10), asyncio.Event(), CountingHeartbeat()
    await slots.reserve(10, stop, heartbeat)
    waiting = asyncio.create_task(slots.reserve(10, stop, heartbeat))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 3) == 0
    assert slots.free == 0  # nothing taken for a loop that stopped


async def test_a_loop_takes_what_is_free_up_to_what_it_asked_for() -> None:
    slots, stop, heartbeat = Slots(4), asyncio.Event(), CountingHeartbeat()
    assert await slots.reserve(10, stop, heartbeat) == 4  # a batch larger than all the slots
    await slots.release(3)
    await slots.release(0)
    assert slots.free == 3
