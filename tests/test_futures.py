"""One future per caller, cancellation isolation, and load_many.

The contract: README, Semantics: Futures and cancellation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


async def idle(iterations: int = 15) -> None:
    for _ in range(iterations):
        await asyncio.sleep(0)


# ---------------------------------------------------------------- one future per caller


async def test_every_load_returns_its_own_future(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    queued = [loader.load(1), loader.load(1)]
    await spin(lambda: recorder.calls == 1)
    in_flight = loader.load(1)
    recorder.release()
    await asyncio.gather(*queued, in_flight)
    cached = [loader.load(1), loader.load(1)]
    futures = [*queued, in_flight, *cached]
    assert len({id(future) for future in futures}) == len(futures)


async def test_cancelling_one_queued_caller_spares_the_others(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    cancelled, kept = loader.load(1), loader.load(1)
    cancelled.cancel()
    assert await kept == "value-of-1"
    assert cancelled.cancelled()
    assert loader.cache_map == {1: "value-of-1"}
    assert recorder.batches == [[1]]


async def test_cancelling_one_caller_in_flight_spares_the_others(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    cancelled, kept = loader.load(1), loader.load(1)
    await spin(lambda: recorder.calls == 1)
    cancelled.cancel()
    await idle(3)
    assert not recorder.cancelled, "load_fn was cancelled because one caller was"
    recorder.release()
    assert await kept == "value-of-1"
    assert loader.cache_map == {1: "value-of-1"}


async def test_cancelling_the_awaiting_task_spares_the_others(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)

    async def caller() -> Any:
        return await loader.load(1)

    doomed = asyncio.create_task(caller())
    survivor = asyncio.create_task(caller())
    await spin(lambda: recorder.calls == 1)
    doomed.cancel()
    await asyncio.wait([doomed])
    assert doomed.cancelled()
    recorder.release()
    assert await survivor == "value-of-1"
    assert loader.cache_map == {1: "value-of-1"}


async def test_only_caller_cancelled_in_flight_cancels_load_fn(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    """README, Semantics: Futures and cancellation. A load_fn nobody waits for any more is cancelled."""
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    future = loader.load(1)
    await spin(lambda: recorder.calls == 1)
    future.cancel()
    await spin(lambda: recorder.cancelled == [0])
    assert loader.cache_map == {}
    assert loader._debug_state()["in_flight"] == 0
    again = loader.load(1)
    await spin(lambda: recorder.calls == 2)
    recorder.release()
    assert await again == "value-of-1"
    assert loader.cache_map == {1: "value-of-1"}


async def test_a_batch_with_one_caller_left_keeps_running(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    gone = [loader.load(1), loader.load(2)]
    stays = loader.load(2)
    many = loader.load_many([1, 3])
    await spin(lambda: recorder.calls == 1)
    for future in (*gone, many):
        future.cancel()
    await idle(3)
    assert not recorder.cancelled
    joined_late = loader.load(3)
    stays.cancel()
    await idle(3)
    assert not recorder.cancelled  # joined_late still wants key 3
    recorder.release()
    assert await joined_late == "value-of-3"
    assert loader.cache_map == {1: "value-of-1", 2: "value-of-2", 3: "value-of-3"}


async def test_keys_with_every_waiter_cancelled_are_dropped(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    dead = [loader.load("dead"), loader.load("dead")]
    live = loader.load("live")
    half = [loader.load("half"), loader.load("half")]
    for future in (*dead, half[0]):
        future.cancel()
    assert await asyncio.gather(live, half[1]) == ["value-of-'live'", "value-of-'half'"]
    assert recorder.batches == [["live", "half"]]


async def test_batch_without_live_waiter_does_not_call_load_fn(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    futures = [loader.load(key) for key in range(3)]
    many = loader.load_many([5, 6])
    for future in (*futures, many):
        future.cancel()
    await idle()
    assert recorder.batches == []
    # Nothing stuck: the keys load normally afterwards.
    assert await loader.load_many([0, 5]) == ["value-of-0", "value-of-5"]


async def test_waiter_cancelled_before_dispatch_then_reloaded(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.load(1).cancel()
    again = loader.load(1)
    assert await again == "value-of-1"
    assert recorder.batches == [[1]]


async def test_resolution_tolerates_futures_completed_by_callers(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    tampered_result, tampered_error, cancelled, normal = (loader.load(key) for key in (1, 2, 3, 4))
    await spin(lambda: recorder.calls == 1)
    tampered_result.set_result("mine")
    tampered_error.set_exception(LookupError("mine"))
    cancelled.cancel()
    recorder.release()
    assert await normal == "value-of-4"
    assert tampered_result.result() == "mine"
    assert isinstance(tampered_error.exception(), LookupError)
    assert loader.cache_map == {1: "value-of-1", 2: "value-of-2", 3: "value-of-3", 4: "value-of-4"}


async def test_failure_tolerates_futures_completed_by_callers(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    done_early, cancelled, normal = loader.load(1), loader.load(2), loader.load(3)
    await spin(lambda: recorder.calls == 1)
    done_early.set_result("mine")
    cancelled.cancel()
    boom = RuntimeError("batch failed")
    recorder.release(raises=boom)
    with pytest.raises(RuntimeError) as info:
        await normal
    assert info.value is boom
    assert done_early.result() == "mine"


# ---------------------------------------------------------------- load_many


async def test_load_many_returns_one_future_not_a_gather(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder())
    future = loader.load_many([1, 2, 3])
    assert isinstance(future, asyncio.Future)
    assert not isinstance(future, asyncio.tasks._GatheringFuture)  # type: ignore[attr-defined]
    assert future.get_loop() is asyncio.get_running_loop()
    assert await future == ["value-of-1", "value-of-2", "value-of-3"]


async def test_load_many_keeps_order_and_duplicates(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.prime("c", "cached")
    assert await loader.load_many(["b", "a", "c", "b", "a"]) == [
        "value-of-'b'",
        "value-of-'a'",
        "cached",
        "value-of-'b'",
        "value-of-'a'",
    ]
    assert recorder.batches == [["b", "a"]]


@pytest.mark.parametrize("keys", [[], (), iter(()), {}.keys()], ids=["list", "tuple", "iterator", "keys-view"])
async def test_load_many_empty(loader_cls: type, make_recorder: Any, keys: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    future = loader.load_many(keys)
    assert await future == []
    await idle()
    assert recorder.batches == []


async def test_load_many_accepts_any_iterable(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder())
    assert await loader.load_many(key for key in (1, 2)) == ["value-of-1", "value-of-2"]
    assert await loader.load_many(range(3, 5)) == ["value-of-3", "value-of-4"]


async def test_load_many_all_cached_is_done_immediately(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.prime_many({1: "a", 2: "b"})
    future = loader.load_many([1, 2, 1])
    assert future.done()
    assert future.result() == ["a", "b", "a"]
    assert recorder.batches == []


async def test_load_many_result_list_is_fresh(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder())
    first = await loader.load_many([1, 2])
    first.append("mutated")
    assert await loader.load_many([1, 2]) == ["value-of-1", "value-of-2"]


async def test_load_many_fails_with_the_first_failure_in_time(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1)
    future = loader.load_many(["late", "early", "slow"])
    await spin(lambda: recorder.calls == 3)
    early_error = LookupError("early")
    recorder.release(1, raises=early_error)
    # It fails as soon as one key fails, without waiting for the others.
    with pytest.raises(LookupError) as info:
        await future
    assert info.value is early_error
    recorder.release(0, raises=LookupError("late"))
    recorder.release(2)
    await spin(lambda: recorder.finished == [2])
    await idle(3)
    # The other keys still loaded and were cached.
    assert loader.cache_map == {"slow": "value-of-'slow'"}


async def test_load_many_fails_with_a_per_key_exception(loader_cls: type) -> None:
    missing = KeyError("b")

    async def fetch(keys: list[str]) -> list[Any]:
        return [missing if key == "b" else key for key in keys]

    loader = loader_cls(fetch)
    with pytest.raises(KeyError) as info:
        await loader.load_many(["a", "b", "c"])
    assert info.value is missing
    assert loader.cache_map == {"a": "a", "c": "c"}


async def test_load_many_return_exceptions(loader_cls: type) -> None:
    missing = KeyError("b")

    async def fetch(keys: list[str]) -> list[Any]:
        return [missing if key == "b" else key.upper() for key in keys]

    loader = loader_cls(fetch)
    loader.prime("z", "cached")
    result = await loader.load_many(["a", "b", "z", "b"], return_exceptions=True)
    assert result[0] == "A" and result[2] == "cached"
    assert result[1] is missing and result[3] is missing


async def test_load_many_return_exceptions_with_batch_failure(loader_cls: type, make_recorder: Any) -> None:
    boom = OSError("down")
    loader = loader_cls(make_recorder(raises=boom))
    assert await loader.load_many([1, 2], return_exceptions=True) == [boom, boom]


async def test_load_many_return_exceptions_is_keyword_only(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder())
    with pytest.raises(TypeError):
        loader.load_many([1], True)


async def test_cancelling_load_many_spares_other_callers(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    single = loader.load(1)
    many = loader.load_many([1, 2])
    await spin(lambda: recorder.calls == 1)
    many.cancel()
    other = loader.load_many([2])
    await idle(3)
    assert not recorder.cancelled
    recorder.release()
    assert await single == "value-of-1"
    assert await other == ["value-of-2"]
    assert loader.cache_map == {1: "value-of-1", 2: "value-of-2"}


async def test_cancelling_load_many_before_dispatch_spares_other_callers(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    single = loader.load(1)
    many = loader.load_many([1, 2])
    many.cancel()
    assert await single == "value-of-1"
    assert many.cancelled()
    assert 1 in recorder.keys


async def test_cancelling_the_task_awaiting_load_many(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    task = asyncio.create_task(asyncio.wait_for(loader.load_many([1, 2]), 10))
    single = loader.load(2)
    await spin(lambda: recorder.calls == 1)
    task.cancel()
    await asyncio.wait([task])
    recorder.release()
    assert await single == "value-of-2"


async def test_load_many_with_cache_key_fn_and_unhashable_keys(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: key["id"] * 2)
    loader = loader_cls(recorder, cache_key_fn=lambda key: key["id"])
    assert await loader.load_many([{"id": 1}, {"id": 2}, {"id": 1}]) == [2, 4, 2]
    assert recorder.batches == [[{"id": 1}, {"id": 2}]]


async def test_no_unretrieved_exception_reports(
    loader_cls: type, make_recorder: Any, spin: Any, asyncio_errors: Any
) -> None:
    """Failures nobody can retrieve (after load_many already failed, or was cancelled) are not reported."""
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1)
    failing = loader.load_many([1, 2])
    cancelled = loader.load_many([3])
    await spin(lambda: recorder.calls == 3)
    cancelled.cancel()
    recorder.release(0, raises=RuntimeError("first"))
    with pytest.raises(RuntimeError, match="first"):
        await failing
    recorder.release(1, raises=RuntimeError("second"))
    await spin(lambda: recorder.cancelled == [2])  # nobody waits for key 3: its load_fn was cancelled
    await idle()
    del failing, cancelled
    # The autouse asyncio_errors fixture collects garbage and fails on any report.
