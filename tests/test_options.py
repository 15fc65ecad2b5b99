"""The production options of both twins: statistics, cache_errors, max_concurrent_batches, instrumentation.

README, API and Semantics. Every test runs against both implementations on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from dloader import LoaderStats

# ---------------------------------------------------------------- statistics


async def test_stats_are_off_by_default(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder())
    await loader.load(1)
    assert loader.stats is None


async def test_stats_count_a_scripted_scenario_exactly(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    def value(key: Any) -> Any:
        return LookupError(key) if key in (4, 104) else f"v{key}"

    recorder = make_recorder(value, gated=True)
    loader = loader_cls(recorder, max_batch_size=2, stats=True)
    first = [loader.load(1), loader.load(2), loader.load(1), loader.load(3)]  # 3 fetched, 1 joined while queued
    many = loader.load_many([3, 4, 5])  # 3 joins the queue, 4 and 5 fetched
    await spin(lambda: recorder.calls == 3)  # 5 keys split into 3 batches of at most 2
    joined_in_flight = loader.load(2)
    recorder.release(0)
    recorder.release(1)
    recorder.release(2, raises=ValueError("batch 3 failed"))
    await asyncio.gather(*first, joined_in_flight, many, return_exceptions=True)
    hits = await loader.load_many([1, 2, 2])
    assert hits == ["v1", "v2", "v2"]
    assert await loader.load(1) == "v1"
    stats = loader.stats
    assert isinstance(stats, LoaderStats)
    assert stats == LoaderStats(
        loads=4 + 3 + 1 + 3 + 1,
        cache_hits=4,
        joined=1 + 1 + 1,
        batches=3,
        batch_keys=5,
        batch_failures=1,
        key_failures=1,
    )
    assert stats.as_dict()["batch_keys"] == 5
    assert (stats + stats).loads == 2 * stats.loads
    assert stats + LoaderStats() == stats


async def test_stats_count_bad_result_shapes_as_batch_failures(loader_cls: type) -> None:
    async def wrong_length(keys: list[int]) -> list[int]:
        return []

    loader = loader_cls(wrong_length, stats=True)
    with pytest.raises(ValueError):
        await loader.load(1)
    assert loader.stats.batch_failures == 1
    assert loader.stats.key_failures == 0


async def test_stats_option_is_validated(loader_cls: type, make_recorder: Any) -> None:
    with pytest.raises(TypeError, match="stats must be True or False"):
        loader_cls(make_recorder(), stats="yes")


# ---------------------------------------------------------------- cache_errors


async def test_cache_errors_false_retries_failed_keys(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: LookupError(key))
    loader = loader_cls(recorder)
    for _ in range(2):
        with pytest.raises(LookupError):
            await loader.load(1)
    assert recorder.calls == 2


async def test_cache_errors_true_caches_per_key_failures_until_cleared(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: LookupError(key) if key == 1 else f"v{key}")
    loader = loader_cls(recorder, cache_errors=True)
    with pytest.raises(LookupError) as first:
        await loader.load(1)
    with pytest.raises(LookupError) as second:
        await loader.load(1)
    assert second.value is first.value
    assert await loader.load_many([1, 2], return_exceptions=True) == [first.value, "v2"]
    assert recorder.batches == [[1], [2]]
    loader.clear(1)
    with pytest.raises(LookupError):
        await loader.load(1)
    assert recorder.batches == [[1], [2], [1]]


async def test_cache_errors_caches_missing_mapping_keys(loader_cls: type) -> None:
    calls: list[list[int]] = []

    async def load_fn(keys: list[int]) -> dict[int, str]:
        calls.append(keys)
        return {key: f"v{key}" for key in keys if key != 2}

    loader = loader_cls(load_fn, cache_errors=True)
    first = await loader.load_many([1, 2], return_exceptions=True)
    assert first[0] == "v1"
    assert isinstance(first[1], KeyError)
    with pytest.raises(KeyError) as again:
        await loader.load(2)
    assert again.value is first[1]
    assert calls == [[1, 2]]


async def test_cache_errors_never_caches_whole_batch_failures(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(raises=ValueError("database down"))
    loader = loader_cls(recorder, cache_errors=True)
    for _ in range(2):
        with pytest.raises(ValueError):
            await loader.load(1)
    assert recorder.calls == 2


async def test_cache_errors_predicate_decides_per_key(loader_cls: type, make_recorder: Any) -> None:
    seen: list[tuple[Any, str]] = []

    def permanent(key: Any, error: Exception) -> bool:
        seen.append((key, type(error).__name__))
        return isinstance(error, LookupError)

    def value(key: Any) -> Any:
        return LookupError(key) if key == "gone" else TimeoutError(key) if key == "slow" else key

    recorder = make_recorder(value)
    loader = loader_cls(recorder, cache_errors=permanent)
    first = await loader.load_many(["gone", "slow", "ok"], return_exceptions=True)
    assert [type(result) for result in first] == [LookupError, TimeoutError, str]
    second = await loader.load_many(["gone", "slow", "ok"], return_exceptions=True)
    assert second[0] is first[0]  # cached: the very same failure
    assert second[1] is not first[1]  # not cached: fetched again
    assert recorder.batches == [["gone", "slow", "ok"], ["slow"]]
    assert seen[:2] == [("gone", "LookupError"), ("slow", "TimeoutError")]


async def test_cache_errors_with_cache_false_caches_nothing(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(lambda key: LookupError(key))
    loader = loader_cls(recorder, cache=False, cache_errors=True)
    for _ in range(2):
        with pytest.raises(LookupError):
            await loader.load(1)
    assert recorder.calls == 2


def test_cache_errors_is_validated(loader_cls: type, make_recorder: Any) -> None:
    with pytest.raises(TypeError, match="cache_errors must be True, False or a callable"):
        loader_cls(make_recorder(), cache_errors="always")
    loader = loader_cls(make_recorder())
    with pytest.raises(TypeError, match="cache_errors"):
        loader.cache_errors = 1


# ---------------------------------------------------------------- max_concurrent_batches


async def test_max_concurrent_batches_runs_split_batches_in_order(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    running = 0
    most = 0
    started: list[list[int]] = []

    async def load_fn(keys: list[int]) -> list[int]:
        nonlocal running, most
        started.append(keys)
        running += 1
        most = max(most, running)
        for _ in range(3):
            await asyncio.sleep(0)
        running -= 1
        return [key * 10 for key in keys]

    loader = loader_cls(load_fn, max_batch_size=2, max_concurrent_batches=1)
    assert await loader.load_many(range(7)) == [key * 10 for key in range(7)]
    assert most == 1
    assert started == [[0, 1], [2, 3], [4, 5], [6]]
    loader.max_concurrent_batches = 2
    loader.clear_all()
    most = 0
    assert await loader.load_many(range(7)) == [key * 10 for key in range(7)]
    assert most == 2


async def test_max_concurrent_batches_held_back_batch_with_no_caller_is_skipped(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1, max_concurrent_batches=1)
    first = loader.load(1)
    second = loader.load(2)
    third = loader.load(3)
    await spin(lambda: recorder.calls == 1)
    second.cancel()
    recorder.release(0)
    assert await first == "value-of-1"
    await spin(lambda: recorder.calls == 2)
    recorder.release(1)
    assert await third == "value-of-3"
    assert recorder.batches == [[1], [3]]


async def test_shutdown_cancels_held_back_batches(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1, max_concurrent_batches=1)
    futures = [loader.load(key) for key in range(3)]
    await spin(lambda: recorder.calls == 1)
    assert await loader.shutdown() is None
    assert all(future.cancelled() for future in futures)
    assert recorder.calls == 1
    assert loader._debug_state() == {
        "queued": 0, "in_flight": 0, "batches": 0, "joined": 0, "dispatch_scheduled": False, "pending_writes": 0,
    }  # fmt: skip


def test_max_concurrent_batches_is_validated(loader_cls: type, make_recorder: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrent_batches must be an int >= 1"):
        loader_cls(make_recorder(), max_concurrent_batches=0)
    with pytest.raises(TypeError, match="max_concurrent_batches must be an int >= 1"):
        loader_cls(make_recorder(), max_concurrent_batches=1.5)


# ---------------------------------------------------------------- instrumentation

current_request: contextvars.ContextVar[str] = contextvars.ContextVar("current_request", default="none")


class RecordingScope:
    def __init__(self, log: list[Any], keys: list[Any], tokens: list[Any]) -> None:
        self.log = log
        self.keys = keys
        self.tokens = tokens
        self.reset: Any = None

    def enter(self) -> None:
        self.reset = current_request.set(f"batch {self.keys}")
        self.log.append(("enter", self.keys, self.tokens))

    def exit(self, error: BaseException | None, key_failures: int) -> None:
        current_request.reset(self.reset)
        self.log.append(("exit", self.keys, type(error).__name__ if error else None, key_failures))


class RecordingInstrumentation:
    """A minimal instrumentation: the caller's context variable as the token, a log of batches."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def on_load(self, loader: Any, key: Any, future: Any, many: bool) -> Any:
        self.log.append(("load", key, many))
        return current_request.get()

    def on_batch(self, loader: Any, keys: list[Any], tokens: list[Any]) -> RecordingScope:
        return RecordingScope(self.log, keys, tokens)


async def test_instrumentation_sees_callers_and_wraps_each_load_fn_call(loader_cls: type) -> None:
    seen_in_load_fn: list[str] = []

    async def load_fn(keys: list[int]) -> list[Any]:
        seen_in_load_fn.append(current_request.get())
        return [LookupError(key) if key == 3 else key for key in keys]

    instrumentation = RecordingInstrumentation()
    loader = loader_cls(load_fn, max_batch_size=2, instrumentation=instrumentation)
    assert loader.instrumentation is instrumentation

    async def caller(name: str, keys: list[int]) -> Any:
        current_request.set(name)
        return await loader.load_many(keys, return_exceptions=True)

    await asyncio.gather(caller("a", [1]), caller("b", [2, 3]), caller("c", [1]))
    loads = [entry for entry in instrumentation.log if entry[0] == "load"]
    assert loads == [("load", [1], True), ("load", [2, 3], True), ("load", [1], True)]
    batches = [entry for entry in instrumentation.log if entry[0] != "load"]
    assert batches == [  # load_fn never suspends: each batch runs to its end before the next starts
        ("enter", [1, 2], ["a", "b", "c"]),
        ("exit", [1, 2], None, 0),
        ("enter", [3], ["b"]),
        ("exit", [3], None, 1),
    ]
    assert seen_in_load_fn == ["batch [1, 2]", "batch [3]"]


async def test_instrumentation_reports_a_failed_load_fn(loader_cls: type, make_recorder: Any) -> None:
    instrumentation = RecordingInstrumentation()
    loader = loader_cls(make_recorder(raises=ValueError("down")), instrumentation=instrumentation)
    with pytest.raises(ValueError):
        await loader.load(1)
    assert instrumentation.log[-1] == ("exit", [1], "ValueError", 0)


async def test_instrumentation_default_is_read_at_creation(loader_cls: type, make_recorder: Any) -> None:
    from dloader import instrumentation as module

    instrumentation = RecordingInstrumentation()
    module.set_default(instrumentation)
    try:
        instrumented = loader_cls(make_recorder())
        explicit_off = loader_cls(make_recorder(), instrumentation=None)
    finally:
        module.set_default(None)
    plain = loader_cls(make_recorder())
    assert instrumented.instrumentation is instrumentation
    assert explicit_off.instrumentation is None
    assert plain.instrumentation is None
    await asyncio.gather(instrumented.load(1), explicit_off.load(2), plain.load(3))
    assert [entry[1] for entry in instrumentation.log if entry[0] == "load"] == [1]


def test_instrumentation_without_the_hooks_is_refused(loader_cls: type, make_recorder: Any) -> None:
    with pytest.raises(TypeError, match="instrumentation must have on_load"):
        loader_cls(make_recorder(), instrumentation=object())


# ---------------------------------------------------------------- contexts


async def test_load_fn_runs_in_the_context_of_its_loaders_first_call(loader_cls: type) -> None:
    """README, Semantics: Batching. Loaders of different requests share one dispatch, never a context."""
    seen: dict[str, list[str]] = {"first": [], "second": []}

    def make(label: str) -> Any:
        async def load_fn(keys: list[int]) -> list[int]:
            seen[label].append(current_request.get())
            return keys

        return load_fn

    first, second = loader_cls(make("first"), max_batch_size=1), loader_cls(make("second"))

    async def request(name: str, loader: Any, keys: list[int], yields: int) -> Any:
        current_request.set(name)
        for _ in range(yields):
            await asyncio.sleep(0)
        return await loader.load_many(keys)

    async def busy() -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    await asyncio.gather(
        busy(), request("a", first, [1, 2], 0), request("b", second, [3], 0), request("c", first, [4], 1)
    )
    assert seen == {"first": ["a", "a", "a"], "second": ["b"]}
