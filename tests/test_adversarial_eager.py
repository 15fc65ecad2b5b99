"""Issue 9 item 1: what broke under asyncio.eager_task_factory, pinned on every loop and task factory
(conftest runs each test under none, a plain custom one, and the eager one on 3.12+)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import SETTLE_LIMIT, Recorder, assert_idle, loader_tasks, settle


def value_of(key: Any) -> str:
    return f"value-of-{key!r}"


async def test_ten_gathered_loads_are_one_batch(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await asyncio.gather(*(loader.load(key) for key in range(10))) == [value_of(key) for key in range(10)]
    assert recorder.batches == [list(range(10))]


async def test_ten_gathered_coroutines_that_load_are_one_batch(loader_cls: type) -> None:
    """gather() wraps coroutines in tasks: under an eager factory each runs load() inside gather()."""
    recorder = Recorder()
    loader = loader_cls(recorder)

    async def resolve(key: int) -> Any:
        return await loader.load(key)

    async with asyncio.timeout(SETTLE_LIMIT):
        assert await asyncio.gather(*(resolve(key) for key in range(10))) == [value_of(key) for key in range(10)]
    assert recorder.batches == [list(range(10))]


async def test_load_many_is_one_batch(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load_many([5, 6, 7]) == [value_of(5), value_of(6), value_of(7)]
    assert recorder.batches == [[5, 6, 7]]


async def test_lone_load_with_cache_key_fn(loader_cls: type) -> None:
    recorder = Recorder(lambda key: key["id"] * 10)
    loader = loader_cls(recorder, cache_key_fn=lambda key: key["id"])
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load({"id": 1}) == 10
        assert await loader.load_many([{"id": 2}, {"id": 1}]) == [20, 10]
    assert recorder.batches == [[{"id": 1}], [{"id": 2}]]
    assert loader.cache_map == {1: 10, 2: 20}


async def test_load_many_whose_only_missing_key_resolves_synchronously(loader_cls: type) -> None:
    """With a load_fn that never suspends, an eager batch can finish inside load_many() itself."""

    async def never_suspends(keys: list[int]) -> list[str]:
        return [value_of(key) for key in keys]

    loader = loader_cls(never_suspends)
    loader.prime(1, "primed")
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load_many([1, 2]) == ["primed", value_of(2)]
        assert await loader.load_many([3]) == [value_of(3)]
        assert await loader.load_many([3, 4, 4]) == [value_of(3), value_of(4), value_of(4)]
    await settle(loader)
    assert_idle(loader)


def test_many_sequential_loads_leave_the_loader_idle_and_free_to_move(loader_cls: type, loop_factory: Any) -> None:
    calls: list[list[int]] = []

    async def never_suspends(keys: list[int]) -> list[int]:
        calls.append(keys)
        return [key * 2 for key in keys]

    loader = loader_cls(never_suspends)

    async def load_one_by_one(keys: range) -> None:
        for key in keys:
            async with asyncio.timeout(SETTLE_LIMIT):
                assert await loader.load(key) == key * 2
        await settle(loader)
        assert not loader_tasks()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(load_one_by_one(range(1000)))
    assert_idle(loader)
    with asyncio.Runner(loop_factory=loop_factory) as runner:  # a new loop: the idle loader rebinds
        runner.run(load_one_by_one(range(1000, 1010)))
    assert_idle(loader)
    assert len(calls) == 1010


async def test_load_fn_loading_from_its_own_loader(loader_cls: type) -> None:
    """A nested load issued inside load_fn (eagerly, inside the batch) forms a later batch."""
    batches: list[list[int]] = []

    async def parents(keys: list[int]) -> list[Any]:
        batches.append(keys)
        children = [key + 100 for key in keys if key < 100]
        loaded = await loader.load_many(children) if children else []
        found = dict(zip(children, loaded))
        return [found.get(key + 100, key) for key in keys]

    loader = loader_cls(parents)
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await asyncio.gather(loader.load(1), loader.load(2)) == [101, 102]
    assert batches == [[1, 2], [101, 102]]
    await settle(loader)
    assert_idle(loader)


@pytest.mark.parametrize("many", [False, True], ids=["load", "load_many"])
def test_a_task_factory_that_fails_leaves_nothing_queued(loader_cls: type, loop_factory: Any, many: bool) -> None:
    """The dispatch is scheduled after every key is queued; when that fails, all of them leave the queue."""
    recorder = Recorder()
    loader = loader_cls(recorder)

    def failing_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        coro.close()
        raise RuntimeError("no tasks today")

    async def main() -> None:
        # The first step of the main task on a fresh loop: nothing else is ready, so the
        # dispatch is a task (a busy asyncio loop would use a timer and never call the factory).
        loop = asyncio.get_running_loop()
        previous = loop.get_task_factory()
        loop.set_task_factory(failing_factory)
        try:
            call = (lambda: loader.load_many([1, 2, 2, 3])) if many else (lambda: loader.load(1))
            with pytest.raises(RuntimeError, match="no tasks today"):
                call()
        finally:
            loop.set_task_factory(previous)
        assert_idle(loader)
        async with asyncio.timeout(SETTLE_LIMIT):
            assert await loader.load_many([1, 2, 3]) == [value_of(1), value_of(2), value_of(3)]
        assert recorder.batches == [[1, 2, 3]]
        await settle(loader)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    assert_idle(loader)
