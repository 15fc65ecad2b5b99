"""Issue 9 items 6, 11, 13 and 14: StopIteration results fail only their key, clear messages for
misuse, primed exceptions fail their loads, and prime() answers loads still queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import SETTLE_LIMIT, Recorder, assert_idle, settle

KEYS = [1, 2, 3, 4]


def value_of(key: Any) -> str:
    return f"value-of-{key!r}"


async def outcomes(futures: list[asyncio.Future[Any]]) -> list[Any]:
    """Each future's value, or its exception; waits (bounded) for all of them."""
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.wait(futures)
    return [future.exception() or future.result() for future in futures]


def assert_failed_by_stop_iteration(outcome: Any, stop: StopIteration) -> None:
    # A StopIteration cannot be set on a future (asyncio refuses it): it arrives as the cause.
    assert type(outcome) is RuntimeError, outcome
    assert outcome.__cause__ is stop


# ---------------------------------------------------------------- StopIteration fails only its key


@pytest.mark.parametrize("shape", ["list", "mapping"])
async def test_stop_iteration_result_fails_only_its_key(loader_cls: type, shape: str) -> None:
    stop = StopIteration()

    async def fetch(keys: list[int]) -> Any:
        results = {key: stop if key == 2 else value_of(key) for key in keys}
        return list(results.values()) if shape == "list" else results

    loader = loader_cls(fetch)
    results = await outcomes([loader.load(key) for key in KEYS])
    assert_failed_by_stop_iteration(results[1], stop)
    assert [results[0], results[2], results[3]] == [value_of(1), value_of(3), value_of(4)]
    assert loader.cache_map == {1: value_of(1), 3: value_of(3), 4: value_of(4)}
    loader.clear_all()
    async with asyncio.timeout(SETTLE_LIMIT):
        many = await loader.load_many(KEYS, return_exceptions=True)
    assert_failed_by_stop_iteration(many[1], stop)
    assert [many[0], many[2], many[3]] == [value_of(1), value_of(3), value_of(4)]
    await settle(loader)
    assert_idle(loader)


async def test_cache_map_raising_stop_iteration_fails_only_that_key(loader_cls: type) -> None:
    stop = StopIteration()

    class RefusesKeyTwo(dict[Any, Any]):
        def __setitem__(self, key: Any, value: Any) -> None:
            if key == 2:
                raise stop
            super().__setitem__(key, value)

    cache_map = RefusesKeyTwo()
    loader = loader_cls(Recorder(), cache_map=cache_map)
    results = await outcomes([loader.load(key) for key in KEYS])
    assert_failed_by_stop_iteration(results[1], stop)
    assert [results[0], results[2], results[3]] == [value_of(1), value_of(3), value_of(4)]
    assert dict(cache_map) == {1: value_of(1), 3: value_of(3), 4: value_of(4)}
    await settle(loader)
    assert_idle(loader)


# ---------------------------------------------------------------- messages


def test_unhashable_cache_key_blames_cache_key_fn(loader_cls: type) -> None:
    loader = loader_cls(Recorder(), cache_key_fn=lambda key: [key] if key == 1 else key, name="users")

    async def use() -> None:
        with pytest.raises(TypeError) as info:
            loader.load(1)
        message = str(info.value)
        assert "cache_key_fn" in message and "unhashable" in message, message
        assert "pass cache_key_fn" not in message, message
        with pytest.raises(TypeError) as many_info:
            loader.load_many([0, 1])
        assert "cache_key_fn" in str(many_info.value)
        assert_idle(loader)

    asyncio.run(use())


async def test_async_generator_load_fn_fails_every_key_with_a_clear_message(loader_cls: type) -> None:
    async def generate(keys: list[int]) -> AsyncIterator[int]:
        for key in keys:
            yield key

    loader = loader_cls(generate)
    results = await outcomes([loader.load(1), loader.load(2), loader.load_many([3])])
    for outcome in results:
        assert type(outcome) is TypeError, outcome
        assert "async generator" in str(outcome), outcome
    await settle(loader)
    assert_idle(loader)


@pytest.mark.parametrize("keys", ["abc", b"ab"], ids=["str", "bytes"])
async def test_load_many_of_a_string_is_refused(loader_cls: type, keys: Any) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    with pytest.raises(TypeError) as info:
        loader.load_many(keys)
    assert type(keys).__name__ in str(info.value)
    assert_idle(loader)
    await settle(loader)
    assert recorder.batches == []


def test_non_callable_load_fn_message_quotes_the_name_once(loader_cls: type) -> None:
    with pytest.raises(TypeError) as info:
        loader_cls("users")
    message = str(info.value)
    assert "\"'users'\"" not in message, message
    assert "load_fn" in message
    with pytest.raises(TypeError) as named:
        loader_cls(3, name="users")
    assert "DataLoader 'users'" in str(named.value)


# ---------------------------------------------------------------- a primed exception fails its loads


async def test_primed_exception_fails_loads_of_its_key(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    error = LookupError("primed")
    loader.prime("k", error)
    async with asyncio.timeout(SETTLE_LIMIT):
        with pytest.raises(LookupError) as info:
            await loader.load("k")
        assert info.value is error
        with pytest.raises(LookupError) as many_info:
            await loader.load_many(["k", "j"])
        assert many_info.value is error
        assert await loader.load_many(["k", "j"], return_exceptions=True) == [error, value_of("j")]
    assert "k" not in recorder.keys
    await settle(loader)
    assert_idle(loader)


async def test_primed_exception_through_prime_many(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    error = KeyError("gone")
    loader.prime_many({"k": error, "j": "fine"})
    async with asyncio.timeout(SETTLE_LIMIT):
        with pytest.raises(KeyError) as info:
            await loader.load_many(["j", "k"])
        assert info.value is error
        assert await loader.load("j") == "fine"
    assert recorder.batches == []


# ---------------------------------------------------------------- prime() answers loads still queued


async def test_prime_answers_a_queued_load_and_drops_the_key(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    future = loader.load("k")
    loader.prime("k", "primed")
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await future == "primed"
    await settle(loader)
    assert recorder.batches == []
    assert loader.cache_map == {"k": "primed"}
    assert_idle(loader)


async def test_prime_answers_every_queued_caller_and_the_batch_keeps_the_other_keys(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    primed_callers = [loader.load("k"), loader.load("k")]
    other = loader.load("j")
    many = loader.load_many(["j", "k"])
    loader.prime("k", "primed")
    results = await outcomes([*primed_callers, other, many])
    assert results == ["primed", "primed", value_of("j"), [value_of("j"), "primed"]]
    await settle(loader)
    assert recorder.batches == [["j"]]
    assert loader.cache_map == {"k": "primed", "j": value_of("j")}
    assert_idle(loader)


async def test_prime_of_an_exception_fails_a_queued_load(loader_cls: type) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder)
    future = loader.load("k")
    error = LookupError("primed")
    loader.prime("k", error)
    assert await outcomes([future]) == [error]
    await settle(loader)
    assert recorder.batches == []
    assert_idle(loader)


async def test_prime_while_queued_with_a_cache_key_fn(loader_cls: type) -> None:
    recorder = Recorder(lambda key: key["id"] * 10)
    loader = loader_cls(recorder, cache_key_fn=lambda key: key["id"])
    future = loader.load({"id": 1})
    loader.prime({"id": 1}, "primed")
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await future == "primed"
    await settle(loader)
    assert recorder.batches == []
    assert loader.cache_map == {1: "primed"}
