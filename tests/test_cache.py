"""Caching, de-duplication, cache_key_fn, prime/clear and detaching fetches in flight.

The contract: README, Semantics: Caching.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any

import pytest


class LRU(MutableMapping[Any, Any]):
    """A tiny LRU cache: any MutableMapping must work as cache_map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def __getitem__(self, key: Any) -> Any:
        self.data.move_to_end(key)
        return self.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def __delitem__(self, key: Any) -> None:
        del self.data[key]

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def versioned(recorder_cls: Any, **options: Any) -> Any:
    """A recorder whose values say which call produced them: 'k@call'."""
    calls = {"count": 0}

    class Versioned(recorder_cls):  # type: ignore[misc, valid-type]
        async def __call__(self, keys: list[Any]) -> Any:
            calls["count"] += 1
            call = calls["count"]
            self.value = lambda key: f"{key}@{call}"
            return await super().__call__(keys)

    return Versioned(**options)


# ---------------------------------------------------------------- the cache


async def test_values_are_cached(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    assert await loader.load(1) == "value-of-1"
    assert loader.cache_map == {1: "value-of-1"}
    assert await loader.load(1) == "value-of-1"
    assert await loader.load_many([1, 1]) == ["value-of-1", "value-of-1"]
    assert recorder.batches == [[1]]


async def test_cache_stores_values_not_futures(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        return keys

    loader = loader_cls(fetch)
    await loader.load_many([1, 2])
    assert loader.cache_map == {1: 1, 2: 2}
    assert all(not isinstance(value, asyncio.Future) for value in loader.cache_map.values())


async def test_cache_hit_returns_a_done_future_of_the_running_loop(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        return keys

    loader = loader_cls(fetch)
    loader.prime(1, "one")
    future = loader.load(1)
    assert isinstance(future, asyncio.Future)
    assert future.done() and future.result() == "one"
    assert future.get_loop() is asyncio.get_running_loop()
    assert future is not loader.load(1)


async def test_user_cache_map_is_used(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    cache_map = {"pre": "filled"}
    loader = loader_cls(recorder, cache_map=cache_map)
    assert await loader.load("pre") == "filled"
    await loader.load("new")
    assert cache_map == {"pre": "filled", "new": "value-of-'new'"}
    assert recorder.batches == [["new"]]


async def test_lru_cache_map_evicts_and_reloads(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, cache_map=LRU(2))
    await loader.load_many([1, 2])
    await loader.load(3)  # evicts 1
    assert list(loader.cache_map) == [2, 3]
    await loader.load(2)
    await loader.load(1)
    assert recorder.batches == [[1, 2], [3], [1]]


async def test_cache_map_refusing_a_value_fails_only_that_key(loader_cls: type) -> None:
    class Picky(dict[Any, Any]):
        def __setitem__(self, key: Any, value: Any) -> None:
            if key == "bad":
                raise ValueError("refused")
            super().__setitem__(key, value)

    async def fetch(keys: list[str]) -> list[str]:
        return keys

    loader = loader_cls(fetch, cache_map=Picky())
    good, bad = await asyncio.gather(loader.load("good"), loader.load("bad"), return_exceptions=True)
    assert good == "good"
    assert isinstance(bad, ValueError)


# ---------------------------------------------------------------- failures are never cached


async def test_per_key_failure_not_cached(loader_cls: type) -> None:
    calls: list[list[int]] = []

    async def fetch(keys: list[int]) -> list[Any]:
        calls.append(keys)
        return [ValueError(key) if len(calls) == 1 else key for key in keys]

    loader = loader_cls(fetch)
    with pytest.raises(ValueError):
        await loader.load(1)
    assert loader.cache_map == {}
    assert await loader.load(1) == 1
    assert calls == [[1], [1]]


async def test_batch_failure_not_cached(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(raises=OSError("down"))
    loader = loader_cls(recorder)
    with pytest.raises(OSError):
        await loader.load_many([1, 2])
    recorder.raises = None
    assert await loader.load_many([1, 2]) == ["value-of-1", "value-of-2"]
    assert recorder.batches == [[1, 2], [1, 2]]


# ---------------------------------------------------------------- cache=False


async def test_cache_false_never_reads_or_writes(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    cache_map: dict[Any, Any] = {"preset": "stale"}
    loader = loader_cls(recorder, cache=False, cache_map=cache_map)
    assert await loader.load("preset") == "value-of-'preset'"
    assert await loader.load(1) == "value-of-1"
    assert await loader.load(1) == "value-of-1"
    assert await loader.load_many(["preset", 1]) == ["value-of-'preset'", "value-of-1"]
    assert cache_map == {"preset": "stale"}
    assert recorder.batches == [["preset"], [1], [1], ["preset", 1]]


async def test_cache_false_does_not_serve_primed_values(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, cache=False)
    loader.prime(1, "primed")
    assert await loader.load(1) == "value-of-1"
    assert await loader.load_many([1]) == ["value-of-1"]
    assert recorder.batches == [[1], [1]]


async def test_cache_false_still_joins_queued_and_in_flight(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, cache=False)
    first = [loader.load(1), loader.load(1), loader.load_many([1, 1])]
    await spin(lambda: recorder.calls == 1)
    joined = [loader.load(1), loader.load_many([1])]
    for _ in range(15):
        await asyncio.sleep(0)
    assert recorder.batches == [[1]]
    recorder.release()
    assert await asyncio.gather(*first, *joined) == [
        "value-of-1",
        "value-of-1",
        ["value-of-1", "value-of-1"],
        "value-of-1",
        ["value-of-1"],
    ]
    # Done: the next load asks again.
    next_load = loader.load(1)
    await spin(lambda: recorder.calls == 2)
    recorder.release()
    assert await next_load == "value-of-1"


# ---------------------------------------------------------------- cache_key_fn and unhashable keys


async def test_cache_key_fn_identity(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: f"user{key['id']}")
    loader = loader_cls(recorder, cache_key_fn=lambda key: key["id"])
    first, second = {"id": 1, "extra": "a"}, {"id": 1, "extra": "b"}
    assert await asyncio.gather(loader.load(first), loader.load(second), loader.load({"id": 2})) == [
        "user1",
        "user1",
        "user2",
    ]
    # load_fn gets the original keys (the first requested for each identity).
    assert recorder.batches == [[first, {"id": 2}]]
    assert recorder.arguments[0][0] is first
    assert loader.cache_map == {1: "user1", 2: "user2"}
    assert await loader.load({"id": 1}) == "user1"
    assert recorder.calls == 1


async def test_cache_key_fn_applies_to_prime_and_clear(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: f"fetched{key}")
    loader = loader_cls(recorder, cache_key_fn=lambda key: tuple(key))
    loader.prime([1, 2], "primed")
    assert loader.cache_map == {(1, 2): "primed"}
    assert await loader.load([1, 2]) == "primed"
    loader.prime_many({(3,): "three"})
    assert await loader.load([3]) == "three"
    loader.clear([1, 2])
    loader.clear_many([[3]])
    assert loader.cache_map == {}
    assert await loader.load([1, 2]) == "fetched[1, 2]"
    assert recorder.batches == [[[1, 2]]]


async def test_cache_key_fn_with_load_many(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: sum(key))
    loader = loader_cls(recorder, cache_key_fn=tuple)
    assert await loader.load_many([[1, 2], [3], [1, 2]]) == [3, 3, 3]
    assert recorder.batches == [[[1, 2], [3]]]
    assert loader.cache_map == {(1, 2): 3, (3,): 3}


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("key", [[1], {"a": 1}, {1}], ids=["list", "dict", "set"])
async def test_unhashable_key_raises_from_load(loader_cls: type, make_recorder: Any, cache: bool, key: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, cache=cache, name="users")
    with pytest.raises(TypeError) as info:
        loader.load(key)
    assert repr("users") in str(info.value)
    assert "cache_key_fn" in str(info.value)
    await asyncio.sleep(0)
    assert await loader.load(1) == "value-of-1"
    assert recorder.batches == [[1]]


@pytest.mark.parametrize("cache", [True, False])
async def test_load_many_checks_every_key_first(loader_cls: type, make_recorder: Any, cache: bool) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, cache=cache, name="users")
    with pytest.raises(TypeError) as info:
        loader.load_many([1, 2, [3], 4])
    assert repr("users") in str(info.value)
    assert repr(loader).endswith("queued=0 in_flight=0>")
    for _ in range(15):
        await asyncio.sleep(0)
    assert recorder.batches == []
    assert await loader.load(1) == "value-of-1"
    assert recorder.batches == [[1]]


async def test_cache_key_fn_raising_propagates_from_load(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()

    def key_fn(key: Any) -> Any:
        if key == "bad":
            raise LookupError("no identity")
        return key

    loader = loader_cls(recorder, cache_key_fn=key_fn)
    with pytest.raises(LookupError):
        loader.load("bad")
    with pytest.raises(LookupError):
        loader.load_many(["ok", "bad"])
    for _ in range(15):
        await asyncio.sleep(0)
    assert recorder.batches == []


async def test_cache_key_fn_returning_unhashable(loader_cls: type) -> None:
    async def fetch(keys: list[Any]) -> list[Any]:
        return keys

    loader = loader_cls(fetch, cache_key_fn=list, name="users")
    with pytest.raises(TypeError, match="users"):
        loader.load((1, 2))


# ---------------------------------------------------------------- prime and clear


async def test_prime_and_clear(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.prime(1, "primed")
    assert await loader.load(1) == "primed"
    loader.prime(1, "overwritten")
    assert await loader.load(1) == "overwritten"
    loader.clear(1)
    assert await loader.load(1) == "value-of-1"
    loader.prime_many({2: "two", 3: "three"})
    assert await loader.load_many([2, 3]) == ["two", "three"]
    loader.clear_many([2, 3, 404])
    loader.clear(405)
    assert loader.cache_map == {1: "value-of-1"}
    loader.clear_all()
    assert loader.cache_map == {}
    assert await loader.load(1) == "value-of-1"
    assert recorder.batches == [[1], [1]]


def test_prime_clear_outside_a_loop(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        return keys

    loader = loader_cls(fetch)
    loader.prime(1, "a")
    loader.prime_many({2: "b"})
    loader.clear(1)
    assert loader.cache_map == {2: "b"}
    loader.clear_all()
    assert loader.cache_map == {}


async def test_prime_accepts_exceptions_and_none_as_values(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.prime("none", None)
    assert await loader.load("none") is None
    assert recorder.batches == []


async def test_prime_without_overwrite_keeps_cached_values_and_failures(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: ValueError(key) if key == "bad" else f"value-of-{key}")
    loader = loader_cls(recorder, cache_errors=True)
    assert await loader.load("good") == "value-of-good"
    with pytest.raises(ValueError):
        await loader.load("bad")
    loader.prime("good", "primed", overwrite=False)
    loader.prime("bad", "primed", overwrite=False)
    loader.prime_many({"new": "primed", "good": "again"}, overwrite=False)
    assert await loader.load("good") == "value-of-good"
    with pytest.raises(ValueError):
        await loader.load("bad")
    assert await loader.load("new") == "primed"
    loader.prime("new", ValueError("later"), overwrite=False)  # a primed value is cached too
    assert await loader.load("new") == "primed"
    assert recorder.batches == [["good"], ["bad"]]


async def test_prime_without_overwrite_leaves_a_fetch_in_flight_attached(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    fetching = loader.load("k")
    await spin(lambda: recorder.calls == 1)
    loader.prime("k", "primed", overwrite=False)
    joined = loader.load("k")  # still joins the running fetch: the prime changed nothing
    recorder.release(0)
    assert (await fetching, await joined) == ("value-of-'k'", "value-of-'k'")
    assert loader.cache_map == {"k": "value-of-'k'"}
    assert recorder.batches == [["k"]]


async def test_prime_without_overwrite_answers_queued_loads(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    queued, other = loader.load("k"), loader.load("other")
    loader.prime("k", "primed", overwrite=False)
    failed = loader.load("f")
    loader.prime_many({"f": ValueError("primed failure")}, overwrite=False)
    assert await queued == "primed"
    assert await other == "value-of-'other'"
    with pytest.raises(ValueError, match="primed failure"):
        await failed
    assert recorder.batches == [["other"]]


async def test_prime_overwrite_must_be_given_by_keyword(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder())
    with pytest.raises(TypeError):
        loader.prime("k", "v", False)


# ---------------------------------------------------------------- detaching fetches in flight


@pytest.mark.parametrize("detach", ["clear", "clear_many", "clear_all"])
@pytest.mark.parametrize("detached_finishes_last", [True, False])
async def test_clear_detaches_a_fetch_in_flight(
    loader_cls: type, make_recorder: Any, spin: Any, detach: str, detached_finishes_last: bool
) -> None:
    recorder = versioned(make_recorder, gated=True)
    loader = loader_cls(recorder)
    old = loader.load("k")
    await spin(lambda: recorder.calls == 1)
    if detach == "clear":
        loader.clear("k")
    elif detach == "clear_many":
        loader.clear_many(["k"])
    else:
        loader.clear_all()
    new = loader.load("k")
    await spin(lambda: recorder.calls == 2)
    assert recorder.batches == [["k"], ["k"]]
    order = (1, 0) if detached_finishes_last else (0, 1)
    for index in order:
        recorder.release(index)
        await spin(lambda index=index: index in recorder.finished)
    # The detached fetch still answers its own waiter but does not write the cache.
    assert await old == "k@1"
    assert await new == "k@2"
    assert loader.cache_map == {"k": "k@2"}
    assert await loader.load("k") == "k@2"


async def test_prime_detaches_a_fetch_in_flight(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    old = loader.load("k")
    await spin(lambda: recorder.calls == 1)
    loader.prime("k", "primed")
    assert await loader.load("k") == "primed"
    recorder.release()
    assert await old == "value-of-'k'"
    assert loader.cache_map == {"k": "primed"}
    assert recorder.calls == 1


async def test_detached_fetch_failure_does_not_affect_new_fetch(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = versioned(make_recorder, gated=True)
    loader = loader_cls(recorder)
    old = loader.load("k")
    await spin(lambda: recorder.calls == 1)
    loader.clear("k")
    new = loader.load("k")
    await spin(lambda: recorder.calls == 2)
    recorder.release(0, raises=RuntimeError("old fetch failed"))
    with pytest.raises(RuntimeError):
        await old
    assert not new.done()
    # The new fetch is still the one a load joins.
    joined = loader.load("k")
    for _ in range(15):
        await asyncio.sleep(0)
    assert recorder.calls == 2
    recorder.release(1)
    assert await asyncio.gather(new, joined) == ["k@2", "k@2"]
    assert loader.cache_map == {"k": "k@2"}


async def test_clear_of_a_queued_key_keeps_the_fetch(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    future = loader.load("k")
    loader.clear("k")
    loader.clear_all()
    assert await future == "value-of-'k'"
    assert loader.cache_map == {"k": "value-of-'k'"}
    assert recorder.batches == [["k"]]


async def test_prime_of_a_queued_key_answers_its_loads(loader_cls: type, make_recorder: Any) -> None:
    """README, Semantics: Caching. A prime answers the loads of a key still queued; the key leaves the batch."""
    recorder = make_recorder()
    loader = loader_cls(recorder)
    future = loader.load("k")
    joined = loader.load("k")
    other = loader.load("other")
    loader.prime("k", "primed")
    assert future.result() == "primed"
    assert joined.result() == "primed"
    assert await loader.load("k") == "primed"
    assert await other == "value-of-'other'"
    assert recorder.batches == [["other"]]
    assert loader.cache_map == {"k": "primed", "other": "value-of-'other'"}


async def test_prime_of_the_only_queued_key_calls_no_load_fn(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    future = loader.load("k")
    loader.prime("k", "primed")
    assert await future == "primed"
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.batches == []
    assert loader._debug_state() == dict.fromkeys(loader._debug_state(), 0) | {"dispatch_scheduled": False}


async def test_primed_exception_fails_loads_until_cleared(loader_cls: type, make_recorder: Any) -> None:
    """README, Semantics: Caching. A primed Exception fails loads of its key, as an Exception result does."""
    recorder = make_recorder()
    loader = loader_cls(recorder)
    queued = loader.load("k")
    error = LookupError("primed failure")
    loader.prime("k", error)
    with pytest.raises(LookupError) as info:
        await queued
    assert info.value is error
    with pytest.raises(LookupError):
        await loader.load("k")
    with pytest.raises(LookupError):
        await loader.load_many(["j", "k"])
    assert await loader.load_many(["j", "k"], return_exceptions=True) == ["value-of-'j'", error]
    assert recorder.keys == ["j"]
    loader.clear("k")
    assert await loader.load("k") == "value-of-'k'"


async def test_clear_other_keys_does_not_detach(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    future = loader.load("k")
    await spin(lambda: recorder.calls == 1)
    loader.clear("other")
    loader.prime("another", 1)
    joined = loader.load("k")
    recorder.release()
    assert await asyncio.gather(future, joined) == ["value-of-'k'"] * 2
    assert loader.cache_map == {"another": 1, "k": "value-of-'k'"}
    assert recorder.calls == 1
