"""WorkQueue behaves like client-go's rate-limited workqueue."""

from __future__ import annotations

import asyncio

import pytest

from bosun.client.workqueue import QueueShutdown, WorkQueue, run_workers


async def test_key_added_twice_is_processed_once() -> None:
    q = WorkQueue()
    q.add("ns/a")
    q.add("ns/b")
    q.add("ns/a")
    assert len(q) == 2
    assert await q.get() == "ns/a"
    assert await q.get() == "ns/b"
    assert len(q) == 0


async def test_key_added_while_processing_is_requeued_after_done() -> None:
    q = WorkQueue()
    q.add("k")
    key = await q.get()
    q.add("k")
    q.add("k")
    assert len(q) == 0, "a key being processed must not be handed to a second worker"
    q.done(key)
    assert len(q) == 1
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    assert len(q) == 0


async def test_get_waits_for_an_add() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add("late")
    assert await asyncio.wait_for(getter, 1) == "late"


async def test_back_off_doubles_up_to_the_maximum_and_forget_resets_it() -> None:
    q = WorkQueue(base_delay=0.005, max_delay=0.04)
    delays = [q.when("k") for _ in range(6)]
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.04, 0.04]
    assert q.num_requeues("k") == 6
    assert q.num_requeues("other") == 0
    q.forget("k")
    assert q.num_requeues("k") == 0
    assert q.when("k") == 0.005


async def test_default_back_off_is_5ms_doubling_to_1000s() -> None:
    q = WorkQueue()
    assert q.when("k") == 0.005
    assert q.when("k") == 0.01
    for _ in range(40):
        q.when("k")
    assert q.when("k") == 1000.0


async def test_add_rate_limited_delays_the_key() -> None:
    q = WorkQueue(base_delay=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_rate_limited("k")
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "k"
    assert loop.time() - start >= 0.045
    assert q.num_requeues("k") == 1


async def test_add_after_delays_and_keeps_the_earliest_time() -> None:
    q = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("k", 5)
    q.add_after("k", 0.05)
    q.add_after("k", 3)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "k"
    elapsed = loop.time() - start
    assert 0.045 <= elapsed < 1
    q.done("k")
    await asyncio.sleep(0.05)
    assert len(q) == 0, "the later add_after calls were merged into the earliest one"


async def test_add_after_zero_adds_now() -> None:
    q = WorkQueue()
    q.add_after("k", 0)
    assert len(q) == 1


async def test_shutdown_wakes_waiters_and_stops_adds() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    q.add_after("delayed", 0.01)
    q.shutdown()
    with pytest.raises(QueueShutdown):
        await asyncio.wait_for(getter, 1)
    q.add("k")
    assert len(q) == 0
    await asyncio.sleep(0.03)
    assert len(q) == 0
    with pytest.raises(QueueShutdown):
        await q.get()


async def test_run_workers_retries_failures_with_back_off_and_forgets_on_success() -> None:
    q = WorkQueue(base_delay=0.01)
    calls: list[str] = []
    succeeded = asyncio.Event()

    async def reconcile(key: str) -> None:
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        succeeded.set()

    runner = asyncio.create_task(run_workers(q, reconcile, workers=2))
    q.add("ns/app")
    await asyncio.wait_for(succeeded.wait(), 2)
    assert calls == ["ns/app"] * 3
    assert q.num_requeues("ns/app") == 0
    q.shutdown()
    await asyncio.wait_for(runner, 1)


async def test_run_workers_never_processes_one_key_concurrently() -> None:
    q = WorkQueue()
    active: set[str] = set()
    overlaps = 0
    processed = 0

    async def reconcile(key: str) -> None:
        nonlocal overlaps, processed
        if key in active:
            overlaps += 1
        active.add(key)
        await asyncio.sleep(0.005)
        active.discard(key)
        processed += 1

    runner = asyncio.create_task(run_workers(q, reconcile, workers=4))
    for _ in range(20):
        for k in ("a", "b"):
            q.add(k)
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    q.shutdown()
    await asyncio.wait_for(runner, 1)
    assert overlaps == 0
    assert 2 <= processed < 40, "repeated adds were collapsed"
