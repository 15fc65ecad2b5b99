"""Memory and reference leaks: thousands of loads, failures and cancellations leave nothing behind.

Marked ``leak`` (deselect with ``-m 'not leak'``). Each check warms up, takes a
baseline, repeats the workload, and allows only a small constant slack.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from typing import Any

import pytest

pytestmark = pytest.mark.leak

ROUNDS = 4
KEYS_PER_ROUND = 500


class Value:
    """A distinct object per key, so a leaked reference shows in its refcount."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


async def workload(loader_cls: type, shared: Value, error: Exception) -> None:
    async def fetch(keys: list[int]) -> list[Any]:
        if keys[0] % 7 == 3:
            raise error
        await asyncio.sleep(0)
        return [error if key % 5 == 0 else shared for key in keys]

    async with loader_cls(fetch, max_batch_size=50) as loader:
        futures = [loader.load(key) for key in range(KEYS_PER_ROUND)]
        for future in futures[::9]:
            future.cancel()
        many = loader.load_many(range(KEYS_PER_ROUND, KEYS_PER_ROUND + 100), return_exceptions=True)
        failing_many = loader.load_many(range(KEYS_PER_ROUND + 100, KEYS_PER_ROUND + 200))
        cancelled_many = loader.load_many(range(KEYS_PER_ROUND + 200, KEYS_PER_ROUND + 300))
        cancelled_many.cancel()
        await asyncio.gather(*futures, many, failing_many, return_exceptions=True)
        # Cache hits, primes, clears and detached fetches.
        loader.prime_many(dict.fromkeys(range(50), shared))
        await loader.load_many(range(50))
        pending = loader.load(10**6)
        for _ in range(5):
            await asyncio.sleep(0)
        loader.clear_all()
        await asyncio.gather(pending, return_exceptions=True)
        # Something left for shutdown to cancel.
        loader.load(10**6 + 1)
        loader.load_many([10**6 + 2])


def run_rounds(loader_cls: type, loop_factory: Any, shared: Value, error: Exception, rounds: int) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        for _ in range(rounds):
            runner.run(workload(loader_cls, shared, error))


def test_no_object_or_memory_growth(loader_cls: type, loop_factory: Any) -> None:
    shared = Value(0)
    error = LookupError("shared failure")
    run_rounds(loader_cls, loop_factory, shared, error, 2)  # warm-up: caches, interned objects
    error.__traceback__ = None
    gc.collect()
    objects_before = len(gc.get_objects())
    refs_before = (sys.getrefcount(shared), sys.getrefcount(error))
    tracemalloc.start()
    try:
        run_rounds(loader_cls, loop_factory, shared, error, 2)
        error.__traceback__ = None
        gc.collect()
        memory_baseline, _ = tracemalloc.get_traced_memory()
        run_rounds(loader_cls, loop_factory, shared, error, ROUNDS)
        error.__traceback__ = None
        gc.collect()
        memory_after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    objects_after = len(gc.get_objects())
    refs_after = (sys.getrefcount(shared), sys.getrefcount(error))
    # Thousands of keys went through: a per-key leak would be thousands of objects.
    assert objects_after - objects_before < 300, (objects_before, objects_after)
    assert memory_after - memory_baseline < 24 * 1024, (memory_baseline, memory_after)
    assert refs_after == refs_before


async def test_no_references_kept_to_keys_and_values(loader_cls: type) -> None:
    key, value, failure = Value(1), Value(2), LookupError("per key")

    async def fetch(keys: list[Any]) -> list[Any]:
        return [value if item is key else failure for item in keys]

    refs = [sys.getrefcount(key), sys.getrefcount(value), sys.getrefcount(failure)]

    loader = loader_cls(fetch, cache=False)
    other = Value(3)
    for _ in range(1000):
        results = await loader.load_many([key, other], return_exceptions=True)
        assert results[0] is value and results[1] is failure
        with pytest.raises(LookupError):
            await loader.load(other)
    del results
    failure.__traceback__ = None
    # The handle that woke this task (holding the last future) lives until the next iteration.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gc.collect()
    assert [sys.getrefcount(key), sys.getrefcount(value), sys.getrefcount(failure)] == refs


async def test_loader_is_collected(loader_cls: type) -> None:
    import weakref

    async def fetch(keys: list[int]) -> list[int]:
        return keys

    loader = loader_cls(fetch)
    await loader.load_many(range(10))
    loader.load(99).cancel()
    await loader.shutdown()
    reference = weakref.ref(loader)
    del loader
    # asyncio keeps the task it just resumed us from (a dispatch task cancelled before its
    # first step, whose CancelledError traceback holds its frame) until this step yields.
    await asyncio.sleep(0)
    gc.collect()
    assert reference() is None
