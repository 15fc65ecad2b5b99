"""dloader.compat.aiodataloader beyond aiodataloader's own suite: subclass overrides, batch=False,
cache=False, cache_map of futures, chaining, argument errors, and the fixes it keeps (both twins).
"""

from __future__ import annotations

import asyncio
import gc
import warnings
import weakref
from typing import Any

import pytest

from dloader.compat import shim_module


@pytest.fixture
def aiodataloader(loader_cls: type) -> Any:
    """dloader.compat.aiodataloader built on the twin under test."""
    return shim_module("aiodataloader", loader_cls)


def recording_loader(module: Any, **options: Any) -> tuple[Any, list[list[Any]]]:
    calls: list[list[Any]] = []

    async def batch_load_fn(keys: list[Any]) -> list[Any]:
        calls.append(list(keys))
        return keys

    return module.DataLoader(batch_load_fn, **options), calls


async def test_subclass_overrides_batch_load_fn_get_cache_key_and_defaults(aiodataloader: Any) -> None:
    calls: list[list[Any]] = []

    class UserLoader(aiodataloader.DataLoader):  # type: ignore[misc, name-defined]
        max_batch_size = 2

        async def batch_load_fn(self, keys: list[dict[str, int]]) -> list[str]:
            calls.append([key["id"] for key in keys])
            return [f"user-{key['id']}" for key in keys]

        def get_cache_key(self, key: dict[str, int]) -> int:
            return key["id"]

    loader = UserLoader()
    assert loader.max_batch_size == 2
    values = await asyncio.gather(*(loader.load({"id": n}) for n in (1, 2, 3, 1)))
    assert values == ["user-1", "user-2", "user-3", "user-1"]
    assert calls == [[1, 2], [3]]
    assert await loader.load({"id": 3}) == "user-3"  # cached by get_cache_key
    assert len(calls) == 2


async def test_batch_false_loads_each_key_in_its_own_call(aiodataloader: Any) -> None:
    loader, calls = recording_loader(aiodataloader, batch=False)
    assert loader.batch is False
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(1)) == [1, 2, 1]
    assert sorted(calls) == [[1], [2]]  # the repeated key comes from the cache, as in aiodataloader


async def test_cache_false_passes_duplicates_and_never_caches(aiodataloader: Any) -> None:
    loader, calls = recording_loader(aiodataloader, cache=False)
    assert await asyncio.gather(loader.load(1), loader.load(1), loader.load(2)) == [1, 1, 2]
    assert await loader.load_many([3, 3]) == [3, 3]
    assert loader.prime(4, "ignored") is loader
    assert await loader.load(4) == 4
    assert calls == [[1, 1, 2], [3, 3], [4]]
    assert len(loader.cache_map) == 0


async def test_methods_chain(aiodataloader: Any) -> None:
    loader, calls = recording_loader(aiodataloader)
    assert loader.prime(1, "one").prime(1, "not stored").clear(404).prime_many({2: "two"}) is loader
    assert await loader.load_many([1, 2]) == ["one", "two"]
    assert loader.clear(1).clear_many([2]).clear_all() is loader
    assert await loader.load_many([1, 2]) == [1, 2]
    assert calls == [[1, 2]]


async def test_primed_exception_is_a_cached_failure(aiodataloader: Any) -> None:
    loader, calls = recording_loader(aiodataloader)
    loader.prime(1, ValueError("primed"))
    for _ in range(2):
        with pytest.raises(ValueError, match="primed"):
            await loader.load(1)
    assert await loader.clear(1).load(1) == 1
    assert calls == [[1]]


async def test_whole_batch_failure_is_not_cached(aiodataloader: Any) -> None:
    attempts: list[list[int]] = []

    async def flaky(keys: list[int]) -> list[int]:
        attempts.append(keys)
        if len(attempts) == 1:
            raise ConnectionError("down")
        return keys

    loader = aiodataloader.DataLoader(flaky)
    with pytest.raises(ConnectionError):
        await loader.load(1)
    assert await loader.load(1) == 1
    assert attempts == [[1], [1]]


async def test_cache_map_of_futures(aiodataloader: Any) -> None:
    futures: dict[Any, asyncio.Future[Any]] = {}
    loader, calls = recording_loader(aiodataloader, cache_map=futures)
    assert await loader.load_many([1, 2]) == [1, 2]
    assert sorted(futures) == [1, 2]
    assert all(future.done() and future.result() == key for key, future in futures.items())
    loader.prime(3, "three").clear(1)
    assert sorted(futures) == [2, 3]
    assert await loader.load_many([2, 3]) == [2, "three"]
    loader.clear_all()
    assert futures == {}
    assert calls == [[1, 2]]


async def test_batch_function_contract_errors(aiodataloader: Any) -> None:
    async def wrong_length(keys: list[int]) -> list[int]:
        return [*keys, 0]

    with pytest.raises(TypeError, match=r"same length as the Iterable of keys.\n\nKeys:\n\[1\]\n\nValues:\n\[1, 0\]"):
        await aiodataloader.DataLoader(wrong_length).load(1)

    async def not_iterable(keys: list[int]) -> Any:
        return 5

    with pytest.raises(TypeError, match="did not return a Future of a Iterable: 5"):
        await aiodataloader.DataLoader(not_iterable).load(1)


async def test_argument_errors(aiodataloader: Any) -> None:
    def not_a_coroutine_function(keys: list[int]) -> list[int]:
        return keys

    with pytest.raises(AssertionError, match="batch_load_fn must be coroutine"):
        aiodataloader.DataLoader(not_a_coroutine_function)
    with pytest.raises(AssertionError, match="batch_load_fn must be coroutine"):
        aiodataloader.DataLoader()
    loader, calls = recording_loader(aiodataloader)
    with pytest.raises(TypeError, match="must be called with a value"):
        loader.load(None)
    with pytest.raises(TypeError, match="must be called with a value"):
        loader.load_many([1, None])
    with pytest.raises(TypeError, match="Iterable<key>"):
        loader.load_many(5)
    assert calls == []
    assert loader.cache_map == {}  # nothing was queued


async def test_one_callers_cancellation_leaves_the_others_value(aiodataloader: Any) -> None:
    release = asyncio.Event()

    async def gated(keys: list[int]) -> list[int]:
        await release.wait()
        return keys

    loader = aiodataloader.DataLoader(gated)
    leaving, staying = loader.load(1), loader.load(1)
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == 1
    assert await loader.load(1) == 1


def test_created_outside_a_loop_used_by_two_loops_without_warnings(aiodataloader: Any, loop_factory: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader, calls = recording_loader(aiodataloader)

        async def load(key: int) -> Any:
            return await loader.load(key)

        for key in (1, 2):
            loop = loop_factory()
            try:
                assert loop.run_until_complete(load(key)) == key
            finally:
                loop.close()
    assert calls == [[1], [2]]


@pytest.mark.parametrize("variant", ["function", "subclass", "cache_map", "no cache"])
async def test_a_dropped_loader_is_freed_without_the_garbage_collector(aiodataloader: Any, variant: str) -> None:
    # As a core loader: the shim hands the core nothing that refers back to the loader.
    class Subclass(aiodataloader.DataLoader):  # type: ignore[misc, name-defined]
        async def batch_load_fn(self, keys: list[int]) -> list[int]:
            return keys

        def get_cache_key(self, key: int) -> int:
            return key

    async def batch_load_fn(keys: list[int]) -> list[int]:
        return keys

    options: dict[str, Any] = (
        {"cache_map": {}} if variant == "cache_map" else {"cache": False} if variant == "no cache" else {}
    )
    gc.disable()
    try:
        loader = Subclass() if variant == "subclass" else aiodataloader.DataLoader(batch_load_fn, **options)
        assert await loader.load(1) == 1
        assert await loader.load_many([1, 2]) == [1, 2]
        dropped = weakref.ref(loader)
        del loader
        assert dropped() is None
    finally:
        gc.enable()
