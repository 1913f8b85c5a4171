"""Natural batching: what is submitted together goes out together, and each submitter learns
its own item's fate."""

from __future__ import annotations

import asyncio

import pytest

from keeperhub_scheduler.coalesce import Coalescer


class Recorder:
    """A batch call that records each batch, answers each item doubled (or the item's own
    error), and can be held open to simulate a slow call."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"bad {item}") if item < 0 else item * 2 for item in items]


async def test_items_submitted_in_one_turn_go_out_as_one_call() -> None:
    call = Recorder()
    coalescer = Coalescer(call, limit=10)

    results = await asyncio.gather(*(coalescer.submit(item) for item in range(7)))

    assert results == [0, 2, 4, 6, 8, 10, 12]
    assert call.batches == [[0, 1, 2, 3, 4, 5, 6]]


async def test_items_submitted_while_a_call_is_out_wait_for_it_and_go_together() -> None:
    call = Recorder()
    coalescer = Coalescer(call, limit=10)
    call.gate.clear()
    first = asyncio.create_task(coalescer.submit(1))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(coalescer.submit(item)) for item in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert call.batches == [[1]]  # the others wait for the first call to come back

    call.gate.set()

    assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
    assert call.batches == [[1], [2, 3, 4]]


async def test_a_full_batch_goes_out_even_while_another_call_is_out() -> None:
    call = Recorder()
    coalescer = Coalescer(call, limit=3, max_in_flight=4)
    call.gate.clear()

    tasks = [asyncio.create_task(coalescer.submit(item)) for item in range(8)]
    await asyncio.sleep(0.01)
    assert call.batches == [[0, 1, 2], [3, 4, 5]]  # [6, 7] waits to fill or for a call to end
    call.gate.set()

    assert await asyncio.gather(*tasks) == [item * 2 for item in range(8)]
    assert call.batches == [[0, 1, 2], [3, 4, 5], [6, 7]]


async def test_an_item_refused_fails_only_its_own_submitter() -> None:
    coalescer = Coalescer(Recorder(), limit=10)

    results = await asyncio.gather(
        coalescer.submit(1), coalescer.submit(-1), coalescer.submit(2), return_exceptions=True
    )

    assert (results[0], results[2]) == (2, 4)
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "bad -1"


async def test_a_failed_call_fails_every_item_it_carried_and_the_next_call_goes_out() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return list(items)

    coalescer = Coalescer(flaky, limit=10)
    failed = await asyncio.gather(coalescer.submit(1), coalescer.submit(2), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in failed)

    assert await coalescer.submit(3) == 3


async def test_an_answer_of_the_wrong_length_fails_the_batch_instead_of_hanging() -> None:
    async def short(items: list[int]) -> list[int | BaseException]:
        return items[:1]

    coalescer = Coalescer(short, limit=10)
    with pytest.raises(RuntimeError, match="a batch of 2 was answered 1 times"):
        await asyncio.wait_for(asyncio.gather(coalescer.submit(1), coalescer.submit(2)), 5)


async def test_with_a_linger_items_of_separate_turns_wait_for_each_other() -> None:
    """The outcomes of one receive's calls come back a turn or a few milliseconds apart: within
    the linger they go out as one call, where without it each would go alone."""
    call = Recorder()
    coalescer = Coalescer(call, limit=10, linger=0.05)
    tasks = []
    for item in range(4):
        tasks.append(asyncio.create_task(coalescer.submit(item)))
        await asyncio.sleep(0.005)

    assert await asyncio.gather(*tasks) == [0, 2, 4, 6]
    assert call.batches == [[0, 1, 2, 3]]


async def test_with_a_linger_a_batch_waits_while_items_keep_coming() -> None:
    """A receive's slowest call answers after the first's linger is up: the batch waits on as
    long as each item comes within a linger of the one before, so it is not cut in two."""
    call = Recorder()
    coalescer = Coalescer(call, limit=10, linger=0.1)
    tasks = []
    for item in range(6):  # 0.2 s from the first item to the last: two lingers
        tasks.append(asyncio.create_task(coalescer.submit(item)))
        await asyncio.sleep(0.04)

    assert await asyncio.gather(*tasks) == [0, 2, 4, 6, 8, 10]
    assert call.batches == [[0, 1, 2, 3, 4, 5]]


async def test_with_a_linger_a_steady_stream_still_goes_out_within_the_longest_wait() -> None:
    call = Recorder()
    coalescer = Coalescer(call, limit=100, linger=0.05)  # at most 0.2 s from a batch's first
    loop = asyncio.get_running_loop()
    started, tasks = loop.time(), []
    while loop.time() - started < 0.6:
        tasks.append(asyncio.create_task(coalescer.submit(len(tasks))))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)

    assert len(call.batches) >= 3  # never one batch held for as long as items come
    assert sorted(item for batch in call.batches for item in batch) == list(range(len(tasks)))


async def test_a_full_batch_does_not_wait_out_the_linger() -> None:
    call = Recorder()
    coalescer = Coalescer(call, limit=3, linger=60.0)

    results = await asyncio.wait_for(
        asyncio.gather(*(coalescer.submit(item) for item in range(3))), timeout=5
    )

    assert results == [0, 2, 4]
    assert call.batches == [[0, 1, 2]]
