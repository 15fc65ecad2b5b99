"""strawberry's DataLoader tests (tests/test_dataloaders.py), ported in our own words to dloader.compat.strawberry.

Each test names the original it mirrors; every original is accounted for below. Run on both twins and both loops.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from dloader.compat import shim_module

# The originals (strawberry @ 53008d9, 24 tests) and where each is ported:
#   test_loading, test_gathering, test_max_batch_size, test_error, test_error_and_values,
#   test_when_raising_error_in_loader, test_returning_wrong_number_of_results,
#   test_cache_disabled, test_cache_disabled_immediate_await, test_prime, test_prime_nocache,
#   test_clear, test_clear_nocache, test_dont_dispatch_cancelled,
#   test_cancelled_future_with_failing_loader, test_all_futures_cancelled_skips_load_fn,
#   test_partial_cancellation_still_dispatches, test_cache_override, test_custom_cache_key_fn,
#   test_user_class_custom_cache_key_fn, test_works_when_created_in_a_different_loop:
#       ported with the same assertions (yield counts replaced by awaiting the futures: dloader's
#       dispatch may wait a few iterations longer than strawberry's, and timings by events).
#   test_caches_by_id, test_caches_by_id_when_loading_many: ported, except their `a == b`
#       (the same future object): the shim gives each caller its own future, so here `a is not b`
#       is asserted instead; values and the single load_fn call are as in the originals.
#   test_cancelled_futures_cancel_dispatch_task, test_cancelled_futures_cancel_running_dispatch:
#       they read strawberry's internals (loader.batch._dispatch_task), which the shim does not
#       have; their observable behaviour (load_fn cancelled once every caller cancelled, before
#       or while it runs) is ported against load_fn itself.


@pytest.fixture
def strawberry(loader_cls: type) -> Any:
    """dloader.compat.strawberry built on the twin under test."""
    return shim_module("strawberry", loader_cls)


class Calls:
    """An identity load function that records the keys of each call."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    async def __call__(self, keys: list[Any]) -> list[Any]:
        self.calls.append(list(keys))
        return keys


async def echo(keys: list[Any]) -> list[Any]:
    return keys


async def test_loads_one_key_at_a_time_and_many(strawberry: Any) -> None:  # mirrors test_loading
    loader = strawberry.DataLoader(load_fn=echo)
    assert [await loader.load(1), await loader.load(2), await loader.load(3)] == [1, 2, 3]
    assert await loader.load_many([1, 2, 3, 4, 5, 6]) == [1, 2, 3, 4, 5, 6]


async def test_concurrent_loads_make_one_call(strawberry: Any) -> None:  # mirrors test_gathering
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == [1, 2, 3]
    assert load_fn.calls == [[1, 2, 3]]


async def test_batches_split_at_max_batch_size(strawberry: Any) -> None:  # mirrors test_max_batch_size
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, max_batch_size=2)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == [1, 2, 3]
    assert load_fn.calls == [[1, 2], [3]]


async def test_exception_result_fails_its_key(strawberry: Any) -> None:  # mirrors test_error
    async def failing(keys: list[int]) -> list[Any]:
        return [ValueError("no")]

    with pytest.raises(ValueError, match="no"):
        await strawberry.DataLoader(load_fn=failing).load(1)


async def test_failures_and_values_per_key(strawberry: Any) -> None:  # mirrors test_error_and_values
    async def only_two(keys: list[int]) -> list[Any]:
        return [2] if keys == [2] else [ValueError()]

    loader = strawberry.DataLoader(load_fn=only_two)
    with pytest.raises(ValueError):
        await loader.load(1)
    assert await loader.load(2) == 2


async def test_raising_load_fn_fails_every_key(strawberry: Any) -> None:  # mirrors test_when_raising_error_in_loader
    async def broken(keys: list[int]) -> list[int]:
        raise ValueError("broken")

    loader = strawberry.DataLoader(load_fn=broken)
    with pytest.raises(ValueError, match="broken"):
        await loader.load(1)
    with pytest.raises(ValueError, match="broken"):
        await asyncio.gather(loader.load(1), loader.load(2), loader.load(3))


async def test_wrong_result_count_raises_strawberrys_error(strawberry: Any) -> None:
    # mirrors test_returning_wrong_number_of_results
    async def two_results(keys: list[int]) -> list[int]:
        return [1, 2]

    with pytest.raises(
        strawberry.WrongNumberOfResultsReturned,
        match="Received wrong number of results in dataloader, expected: 1, received: 2",
    ):
        await strawberry.DataLoader(load_fn=two_results).load(1)


async def test_same_key_loads_once(strawberry: Any) -> None:  # mirrors test_caches_by_id
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=True)
    first, second = loader.load(1), loader.load(1)
    assert first is not second  # strawberry: the same future (see the module's list of differences)
    assert await first == 1
    assert await second == 1
    assert load_fn.calls == [[1]]


async def test_same_key_loads_once_when_gathered(strawberry: Any) -> None:
    # mirrors test_caches_by_id_when_loading_many
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=True)
    first, second = loader.load(1), loader.load(1)
    assert first is not second
    assert await asyncio.gather(first, second) == [1, 1]
    assert load_fn.calls == [[1]]


async def test_without_cache_duplicates_reach_load_fn(strawberry: Any) -> None:  # mirrors test_cache_disabled
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=False)
    first, second = loader.load(1), loader.load(1)
    assert first != second
    assert (await first, await second) == (1, 1)
    assert load_fn.calls == [[1, 1]]


async def test_without_cache_every_load_calls_load_fn(strawberry: Any) -> None:
    # mirrors test_cache_disabled_immediate_await
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=False)
    assert await loader.load(1) == await loader.load(1) == 1
    assert load_fn.calls == [[1], [1]]


async def test_prime_keeps_cached_values_unless_forced(strawberry: Any) -> None:  # mirrors test_prime
    async def never_empty(keys: list[Any]) -> list[Any]:
        assert keys, "load_fn called without keys"
        return keys

    loader = strawberry.DataLoader(load_fn=never_empty)
    assert await loader.load(1) == 1

    loader.prime(1, 1.1)  # cached: not replaced
    loader.prime(2, 2.1)  # new: stored
    assert (await loader.load(1), await loader.load(2)) == (1, 2.1)

    loader.prime(1, 1.2, force=True)
    loader.prime(2, 2.2, force=True)
    assert (await loader.load(1), await loader.load(2)) == (1.2, 2.2)

    # A forced prime answers a queued load, and cannot change a load already answered from the cache.
    from_cache, queued = loader.load(2), loader.load(3)
    loader.prime_many({2: 2.3, 3: 3.3}, force=True)
    assert (await from_cache, await queued) == (2.2, 3.3)

    # Priming every queued key answers them all, and load_fn is not called with no keys.
    only_queued = loader.load(4)
    loader.prime_many({4: 4.4})
    assert await only_queued == 4.4
    await asyncio.sleep(0)  # let the (now empty) dispatch run: never_empty would fail it


async def test_prime_without_cache_answers_only_queued_loads(strawberry: Any) -> None:  # mirrors test_prime_nocache
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=False)
    loader.prime(1, 1.1)  # nothing to answer and no cache: ignored
    assert await loader.load(1) == 1
    queued = loader.load(2)
    loader.prime(2, 2.2)
    assert await queued == 2.2
    await asyncio.sleep(0)
    assert load_fn.calls == [[1]]


def numbered_batches() -> Any:
    """A load function answering (key, number of its call)."""
    count = 0

    async def load_fn(keys: list[int]) -> list[tuple[int, int]]:
        nonlocal count
        count += 1
        return [(key, count) for key in keys]

    return load_fn


async def test_clear_clear_many_and_clear_all(strawberry: Any) -> None:  # mirrors test_clear
    loader = strawberry.DataLoader(load_fn=numbered_batches())
    assert await loader.load_many([1, 2, 3]) == [(1, 1), (2, 1), (3, 1)]
    loader.clear(1)
    assert await loader.load_many([1, 2, 3]) == [(1, 2), (2, 1), (3, 1)]
    loader.clear_many([1, 2])
    assert await loader.load_many([1, 2, 3]) == [(1, 3), (2, 3), (3, 1)]
    loader.clear_all()
    assert await loader.load_many([1, 2, 3]) == [(1, 4), (2, 4), (3, 4)]


async def test_clear_without_cache_changes_nothing(strawberry: Any) -> None:  # mirrors test_clear_nocache
    loader = strawberry.DataLoader(load_fn=numbered_batches(), cache=False)
    assert await loader.load_many([1, 2, 3]) == [(1, 1), (2, 1), (3, 1)]
    loader.clear(1)
    assert await loader.load_many([1, 2, 3]) == [(1, 2), (2, 2), (3, 2)]
    loader.clear_many([1, 2])
    assert await loader.load_many([1, 2, 3]) == [(1, 3), (2, 3), (3, 3)]
    loader.clear_all()
    assert await loader.load_many([1, 2, 3]) == [(1, 4), (2, 4), (3, 4)]


async def test_cancelled_loads_are_not_reused(strawberry: Any) -> None:  # mirrors test_dont_dispatch_cancelled
    release = asyncio.Event()

    async def gated(keys: list[int]) -> list[int]:
        await release.wait()
        return keys

    loader = strawberry.DataLoader(load_fn=gated)
    release.set()
    assert await loader.load(1) == 1
    release.clear()
    cancelled_by_hand = loader.load(2)
    cancelled_by_hand.cancel()
    cancelled_by_task = loader.load(3)
    waiter = asyncio.ensure_future(cancelled_by_task)
    await asyncio.sleep(0)
    waiter.cancel()  # as a timeout around the await would
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await loader.load(4) == 4
    # New futures for 2 and 3: the cancelled ones are not handed out again.
    assert await loader.load_many([1, 2, 3, 4, 5, 6]) == [1, 2, 3, 4, 5, 6]
    assert cancelled_by_hand.cancelled()
    assert cancelled_by_task.cancelled()
    assert [await loader.load(key) for key in (1, 2, 3, 4)] == [1, 2, 3, 4]


async def test_failing_batch_skips_cancelled_futures(strawberry: Any) -> None:
    # mirrors test_cancelled_future_with_failing_loader
    async def broken(keys: list[int]) -> list[int]:
        raise RuntimeError("executor is broken")

    loader = strawberry.DataLoader(load_fn=broken, cache=False)
    first, second, third = loader.load(1), loader.load(2), loader.load(3)
    first.cancel()
    await asyncio.wait([second, third])
    assert first.cancelled()
    for future in (second, third):
        with pytest.raises(RuntimeError, match="executor is broken"):
            future.result()


async def test_load_fn_skipped_when_every_load_is_cancelled(strawberry: Any) -> None:
    # mirrors test_all_futures_cancelled_skips_load_fn
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=False)
    first, second = loader.load(1), loader.load(2)
    first.cancel()
    second.cancel()
    # Batches start in request order across loaders: once a later loader's load is answered,
    # this loader's dispatch has run (instead of the original's count of loop iterations).
    probe = strawberry.DataLoader(load_fn=echo)
    assert await probe.load("probe") == "probe"
    assert first.cancelled() and second.cancelled()
    assert load_fn.calls == []


@pytest.mark.parametrize("cancel_when", ["queued", "running"])
async def test_load_fn_cancelled_when_every_caller_cancels(strawberry: Any, cancel_when: str) -> None:
    # mirrors test_cancelled_futures_cancel_dispatch_task and test_cancelled_futures_cancel_running_dispatch
    # (observed on load_fn, not on strawberry's dispatch task)
    started = asyncio.Event()
    outcome: list[str] = []

    async def slow(keys: list[int]) -> list[int]:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return keys

    loader = strawberry.DataLoader(load_fn=slow, cache=False)
    first, second = loader.load(1), loader.load(2)
    if cancel_when == "running":
        await started.wait()
    first.cancel()
    second.cancel()
    await loader.shutdown()  # waits for the batch, if any ran, to end
    assert outcome == (["cancelled"] if cancel_when == "running" else [])
    assert started.is_set() == (cancel_when == "running")


async def test_partly_cancelled_batch_still_loads(strawberry: Any) -> None:
    # mirrors test_partial_cancellation_still_dispatches
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=False)
    first, second, third = loader.load(1), loader.load(2), loader.load(3)
    second.cancel()
    await asyncio.wait([first, third])
    assert (first.result(), third.result()) == (1, 3)
    assert second.cancelled()
    assert len(load_fn.calls) == 1
    assert load_fn.calls == [[1, 3]]  # dloader drops the cancelled key (strawberry passed it: [1, 2, 3])


async def test_custom_abstract_cache_holds_the_futures(strawberry: Any) -> None:  # mirrors test_cache_override
    class DictCache(strawberry.AbstractCache):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.futures: dict[Any, asyncio.Future[Any]] = {}

        def get(self, key: Any) -> asyncio.Future[Any] | None:
            return self.futures.get(key)

        def set(self, key: Any, value: asyncio.Future[Any]) -> None:
            self.futures[key] = value

        def delete(self, key: Any) -> None:
            del self.futures[key]

        def clear(self) -> None:
            self.futures.clear()

    cache = DictCache()
    loader = strawberry.DataLoader(load_fn=echo, cache_map=cache)
    assert loader.cache_map is cache
    for key in (1, 2, 3):
        await loader.load(key)
    assert sorted(cache.futures) == [1, 2, 3]
    assert [await cache.futures[key] for key in (1, 2, 3)] == [1, 2, 3]

    loader.clear(1)
    assert sorted(cache.futures) == [2, 3]
    loader.clear_all()
    assert cache.futures == {}

    for key in (1, 2, 3):
        await loader.load(key)
    loader.clear_many([1, 2])
    assert list(cache.futures) == [3]
    assert await loader.load(3) == 3

    loader.prime(3, 4)
    assert await cache.futures[3] == 3
    loader.prime(3, 4, True)
    assert await cache.futures[3] == 4

    with pytest.raises(TypeError, match="unhashable"):
        await loader.load([1, 2, 3])
    value = await loader.load((1, 2, 3))
    stored = cache.get((1, 2, 3))
    assert stored is not None and await stored == value


async def test_cache_key_fn_makes_unhashable_keys_loadable(strawberry: Any) -> None:  # mirrors test_custom_cache_key_fn
    loader = strawberry.DataLoader(load_fn=echo, cache_key_fn=lambda key: ",".join(map(str, key)))
    assert await loader.load([1, 2, "test"]) == [1, 2, "test"]


async def test_cache_key_fn_on_objects(strawberry: Any) -> None:  # mirrors test_user_class_custom_cache_key_fn
    class Person:
        def __init__(self, person_id: int, name: str) -> None:
            self.id = person_id
            self.name = name

    loader = strawberry.DataLoader(load_fn=echo, cache_key_fn=lambda person: person.id)
    first = await loader.load(Person(1, "Nick"))
    assert await loader.load(Person(1, "Nick")) is first  # served from the cache by id
    assert await loader.load(Person(2, "Jane")) is not first


def test_loader_created_outside_any_loop(strawberry: Any) -> None:
    # mirrors test_works_when_created_in_a_different_loop
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache=False)
    loop = asyncio.new_event_loop()

    async def load_one() -> Any:
        return await loader.load(1)

    try:
        assert loop.run_until_complete(load_one()) == 1
    finally:
        loop.close()
    assert load_fn.calls == [[1]]


# ---------------------------------------------------------------- beyond strawberry's suite


async def test_default_cache_map_is_strawberrys_interface_over_the_values(strawberry: Any) -> None:
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn, cache_key_fn=lambda key: key["id"])
    assert await loader.load({"id": 1}) == {"id": 1}
    cache = loader.cache_map
    assert isinstance(cache, strawberry.AbstractCache)
    stored = cache.get({"id": 1})
    assert stored is not None and stored.result() == {"id": 1}
    assert cache.get({"id": 2}) is None
    done = asyncio.get_running_loop().create_future()
    done.set_result("two")
    cache.set({"id": 2}, done)
    pending = asyncio.get_running_loop().create_future()
    cache.set({"id": 3}, pending)  # stored when it is done
    pending.set_result("three")
    await asyncio.sleep(0)
    assert await loader.load_many([{"id": 2}, {"id": 3}]) == ["two", "three"]
    cache.delete({"id": 2})
    cache.clear()
    assert await loader.load({"id": 2}) == {"id": 2}
    assert load_fn.calls == [[{"id": 1}], [{"id": 2}]]


async def test_assigning_a_cache_map(strawberry: Any) -> None:
    cache = strawberry.DefaultCache()
    load_fn = Calls()
    loader = strawberry.DataLoader(load_fn=load_fn)
    loader.cache_map = cache
    assert loader.cache_map is cache
    assert await loader.load(1) == 1
    assert cache.get(1).result() == 1
    assert await loader.load(1) == 1
    assert load_fn.calls == [[1]]
    with pytest.raises(TypeError, match="AbstractCache"):
        loader.cache_map = {}
    plain = strawberry.DataLoader(load_fn=echo)
    plain.cache_map = plain.cache_map  # its own default view: nothing changes
    assert await plain.load(2) == 2
    assert plain.cache_map.get(2).result() == 2


async def test_each_callers_cancellation_is_its_own(strawberry: Any) -> None:
    # strawberry #3606: one caller's cancellation cancelled the shared future of every caller.
    release = asyncio.Event()

    async def gated(keys: list[int]) -> list[int]:
        await release.wait()
        return keys

    loader = strawberry.DataLoader(load_fn=gated)
    leaving, staying = loader.load(1), loader.load(1)
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == 1
    assert await loader.load_many([1, 1]) == [1, 1]


@pytest.mark.parametrize(
    "options", [{}, {"cache": False}, {"cache_key_fn": str}], ids=["default", "no cache", "key fn"]
)
async def test_a_dropped_loader_is_freed_without_the_garbage_collector(
    strawberry: Any, options: dict[str, Any]
) -> None:
    # As a core loader: the shim hands the core nothing that refers back to the loader.
    gc.disable()
    try:
        loader = strawberry.DataLoader(load_fn=echo, **options)
        if not options:
            loader.cache_map = strawberry.DefaultCache()
        assert await loader.load(1) == 1
        assert await loader.load_many([1, 2]) == [1, 2]
        dropped = weakref.ref(loader)
        del loader
        assert dropped() is None
    finally:
        gc.enable()
