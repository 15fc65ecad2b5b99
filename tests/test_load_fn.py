"""What load_fn receives, what it may return, and what happens when it misbehaves.

The contract: README, Semantics: The load function.
"""

from __future__ import annotations

import asyncio
import functools
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

NAME = "users"


def assert_names_loader(error: BaseException, name: str = NAME) -> None:
    assert repr(name) in str(error), f"{error!r} does not name the loader {name!r}"


async def gather_outcomes(*futures: asyncio.Future[Any]) -> list[Any]:
    return await asyncio.gather(*futures, return_exceptions=True)


# ---------------------------------------------------------------- the argument


async def test_called_with_a_new_list_each_time(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    await asyncio.gather(loader.load(1), loader.load(2))
    await loader.load(3)
    first, second = recorder.arguments
    assert type(first) is list and type(second) is list
    assert first is not second
    assert recorder.batches == [[1, 2], [3]]


async def test_mutating_the_argument_cannot_misroute(loader_cls: type) -> None:
    async def vandal(keys: list[int]) -> list[str]:
        results = [f"v{key}" for key in keys]
        keys.reverse()
        keys.append(99)
        keys.sort()
        keys.clear()
        return results

    loader = loader_cls(vandal)
    assert await asyncio.gather(*(loader.load(key) for key in (3, 1, 2))) == ["v3", "v1", "v2"]
    assert loader.cache_map == {3: "v3", 1: "v1", 2: "v2"}


async def test_argument_kept_and_mutated_later_is_harmless(loader_cls: type) -> None:
    kept: list[list[int]] = []

    async def hoarder(keys: list[int]) -> list[str]:
        for old in kept:
            old[:] = [-1]
        kept.append(keys)
        await asyncio.sleep(0)
        return [f"v{key}" for key in keys]

    loader = loader_cls(hoarder, cache=False)
    assert await asyncio.gather(loader.load(1), loader.load(2)) == ["v1", "v2"]
    assert await asyncio.gather(loader.load(1), loader.load(3)) == ["v1", "v3"]


async def test_keys_reach_load_fn_unchanged(loader_cls: type, make_recorder: Any) -> None:
    key_a, key_b = ("tuple", 1), frozenset({1, 2})
    recorder = make_recorder()
    loader = loader_cls(recorder)
    await asyncio.gather(loader.load(key_a), loader.load(key_b))
    assert recorder.arguments[0][0] is key_a
    assert recorder.arguments[0][1] is key_b


# ---------------------------------------------------------------- accepted results


class CustomSequence(Sequence[Any]):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)


class CustomMapping(Mapping[Any, Any]):
    def __init__(self, data: dict[Any, Any]) -> None:
        self.data = data

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@pytest.mark.parametrize(
    "wrap",
    [list, tuple, CustomSequence, lambda items: types.SimpleNamespace(x=items).x],
    ids=["list", "tuple", "custom-sequence", "list-alias"],
)
async def test_sequence_results(loader_cls: type, wrap: Any) -> None:
    async def fetch(keys: list[int]) -> Any:
        return wrap([key * 10 for key in keys])

    loader = loader_cls(fetch)
    assert await asyncio.gather(loader.load(1), loader.load(2), loader.load(3)) == [10, 20, 30]


async def test_range_is_a_sequence(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> Any:
        return range(100, 100 + len(keys))

    loader = loader_cls(fetch)
    assert await asyncio.gather(loader.load("a"), loader.load("b")) == [100, 101]


@pytest.mark.parametrize("wrap", [dict, types.MappingProxyType, CustomMapping], ids=["dict", "proxy", "custom"])
async def test_mapping_results(loader_cls: type, wrap: Any) -> None:
    async def fetch(keys: list[int]) -> Any:
        # Reverse order and an extra key: a mapping is looked up, not zipped.
        return wrap({key: key * 10 for key in [*reversed(keys), 999]})

    loader = loader_cls(fetch)
    assert await asyncio.gather(loader.load(1), loader.load(2)) == [10, 20]
    assert loader.cache_map == {1: 10, 2: 20}


async def test_mapping_missing_key_fails_that_key_with_key_error(loader_cls: type) -> None:
    async def fetch(keys: list[str]) -> dict[str, str]:
        return {key: key.upper() for key in keys if key != "gone"}

    loader = loader_cls(fetch)
    here, gone = await gather_outcomes(loader.load("here"), loader.load("gone"))
    assert here == "HERE"
    assert type(gone) is KeyError
    assert gone.args == ("gone",)
    assert loader.cache_map == {"here": "HERE"}


async def test_mapping_looked_up_by_cache_key(loader_cls: type, make_recorder: Any) -> None:
    seen: list[list[Any]] = []

    async def fetch(keys: list[dict[str, int]]) -> dict[int, str]:
        seen.append(keys)
        return {key["id"]: f"user{key['id']}" for key in keys}

    loader = loader_cls(fetch, cache_key_fn=lambda key: key["id"])
    assert await asyncio.gather(loader.load({"id": 1}), loader.load({"id": 2})) == ["user1", "user2"]
    assert seen == [[{"id": 1}, {"id": 2}]]
    assert loader.cache_map == {1: "user1", 2: "user2"}


async def test_mapping_missing_key_with_cache_key_fn(loader_cls: type) -> None:
    async def fetch(keys: list[dict[str, int]]) -> dict[int, str]:
        return {}

    loader = loader_cls(fetch, cache_key_fn=lambda key: key["id"])
    key = {"id": 7}
    (error,) = await gather_outcomes(loader.load(key))
    assert type(error) is KeyError
    assert error.args[0] == key


async def test_exception_instance_fails_only_that_key(loader_cls: type) -> None:
    boom = LookupError("no such user")

    async def fetch(keys: list[int]) -> list[Any]:
        return [boom if key == 2 else key for key in keys]

    loader = loader_cls(fetch)
    one, two, three = await gather_outcomes(loader.load(1), loader.load(2), loader.load(3))
    assert (one, three) == (1, 3)
    assert two is boom
    assert loader.cache_map == {1: 1, 3: 3}


async def test_exception_subclass_instances_as_results(loader_cls: type) -> None:
    class NotFound(KeyError):
        pass

    async def fetch(keys: list[int]) -> list[Any]:
        return [NotFound(key) for key in keys]

    loader = loader_cls(fetch)
    with pytest.raises(NotFound):
        await loader.load(1)


async def test_awaitable_objects_and_partials_are_accepted(loader_cls: type) -> None:
    class Later:
        def __init__(self, keys: list[int]) -> None:
            self.keys = keys

        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return [key + 1 for key in self.keys]

    class Fetcher:
        async def __call__(self, keys: list[int]) -> list[int]:
            return [key + 2 for key in keys]

    async def scaled(factor: int, keys: list[int]) -> list[int]:
        return [key * factor for key in keys]

    def returns_future(keys: list[int]) -> asyncio.Future[list[int]]:
        future = asyncio.get_running_loop().create_future()
        future.set_result([key + 3 for key in keys])
        return future

    assert await loader_cls(Later).load(1) == 2
    assert await loader_cls(Fetcher()).load(1) == 3
    assert await loader_cls(functools.partial(scaled, 5)).load(2) == 10
    assert await loader_cls(returns_future).load(1) == 4


# ---------------------------------------------------------------- bad results


async def test_wrong_length_fails_every_key(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        return [0] * 5

    loader = loader_cls(fetch, name=NAME)
    outcomes = await gather_outcomes(*(loader.load(key) for key in range(3)))
    assert all(type(error) is ValueError for error in outcomes)
    message = str(outcomes[0])
    assert_names_loader(outcomes[0])
    assert re.search(r"\b3\b", message) and re.search(r"\b5\b", message), message
    assert loader.cache_map == {}


@pytest.mark.parametrize("results", [[], ["only one"], ("a", "b", "c")], ids=["empty", "short", "long-tuple"])
async def test_wrong_length_variants(loader_cls: type, results: Any) -> None:
    async def fetch(keys: list[int]) -> Any:
        return results

    loader = loader_cls(fetch, name=NAME)
    outcomes = await gather_outcomes(loader.load(1), loader.load(2))
    assert [type(error) for error in outcomes] == [ValueError, ValueError]


def generator_result(keys: list[Any]) -> Any:
    return (key for key in keys)


@pytest.mark.parametrize(
    "make_result",
    [
        lambda keys: None,
        lambda keys: 42,
        generator_result,
        lambda keys: "ab",
        lambda keys: b"ab",
        lambda keys: set(keys),
        lambda keys: iter(keys),
    ],
    ids=["None", "int", "generator", "str", "bytes", "set", "iterator"],
)
async def test_non_sequence_result_fails_every_key_with_type_error(loader_cls: type, make_result: Any) -> None:
    async def fetch(keys: list[str]) -> Any:
        return make_result(keys)

    loader = loader_cls(fetch, name=NAME)
    # Two one-character keys: a str or bytes result even has the right length.
    outcomes = await gather_outcomes(loader.load("a"), loader.load("b"))
    assert [type(error) for error in outcomes] == [TypeError, TypeError], outcomes
    assert_names_loader(outcomes[0])
    assert loader.cache_map == {}


async def test_plain_def_load_fn_fails_with_type_error(loader_cls: type) -> None:
    def fetch(keys: list[int]) -> list[int]:
        return keys

    loader = loader_cls(fetch, name=NAME)
    outcomes = await gather_outcomes(loader.load(1), loader.load(2))
    assert [type(error) for error in outcomes] == [TypeError, TypeError]
    assert "async def" in str(outcomes[0])
    assert_names_loader(outcomes[0])


async def test_plain_def_load_fn_raising_fails_every_key(loader_cls: type) -> None:
    boom = ValueError("sync boom")

    def fetch(keys: list[int]) -> Any:
        raise boom

    loader = loader_cls(fetch)
    outcomes = await gather_outcomes(loader.load(1), loader.load(2))
    assert outcomes == [boom, boom]


async def test_bad_results_are_retried(loader_cls: type) -> None:
    calls: list[list[int]] = []

    async def fetch(keys: list[int]) -> Any:
        calls.append(keys)
        return None if len(calls) == 1 else keys

    loader = loader_cls(fetch)
    with pytest.raises(TypeError):
        await loader.load(1)
    assert await loader.load(1) == 1
    assert len(calls) == 2


# ---------------------------------------------------------------- load_fn raising


async def test_exception_fails_every_key_of_the_batch(loader_cls: type, make_recorder: Any) -> None:
    boom = ConnectionError("database down")
    recorder = make_recorder(raises=boom)
    loader = loader_cls(recorder)
    outcomes = await gather_outcomes(loader.load(1), loader.load(2), loader.load(1))
    assert outcomes == [boom, boom, boom]
    assert recorder.batches == [[1, 2]]
    assert loader.cache_map == {}


async def test_exception_fails_only_its_own_batch(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        if 2 in keys:
            raise RuntimeError("bad batch")
        return keys

    loader = loader_cls(fetch, max_batch_size=2)
    outcomes = await gather_outcomes(*(loader.load(key) for key in (1, 2, 3, 4)))
    assert [type(outcome) for outcome in outcomes] == [RuntimeError, RuntimeError, int, int]
    assert loader.cache_map == {3: 3, 4: 4}


async def test_cancelled_error_cancels_every_waiter(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(raises=asyncio.CancelledError())
    loader = loader_cls(recorder)
    futures = [loader.load(1), loader.load(2), loader.load(2)]
    await asyncio.wait(futures)
    assert all(future.cancelled() for future in futures)
    assert loader.cache_map == {}
    # Not cached, not stuck in flight: the next load asks again.
    recorder.raises = None
    assert await loader.load(1) == "value-of-1"
    assert recorder.batches == [[1, 2], [1]]


async def test_cancelled_error_does_not_cancel_the_caller_task(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder(raises=asyncio.CancelledError()))
    future = loader.load(1)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.shield(future)
    # The awaiting task itself was not cancelled.
    current = asyncio.current_task()
    assert current is not None and not current.cancelling()
    await asyncio.sleep(0)


@pytest.mark.parametrize("interrupt_type", [KeyboardInterrupt, SystemExit])
def test_interrupt_fails_waiters_and_propagates(
    loader_cls: type, loop_factory: Any, interrupt_type: type[BaseException], asyncio_errors: list[Any]
) -> None:
    interrupt = interrupt_type()

    async def fetch(keys: list[int]) -> list[int]:
        raise interrupt

    loop = loop_factory()
    try:
        loader = loader_cls(fetch, loop=loop, name=NAME)
        first, second = loader.load(1), loader.load(2)

        async def caller() -> Any:
            return await first

        # Wait through a task: run_until_complete(first) would leave its stop
        # callback queued behind the interrupt and stop the next run at once.
        task = loop.create_task(caller())
        with pytest.raises(interrupt_type) as info:
            loop.run_until_complete(task)
        assert info.value is interrupt
        for future in (first, second):
            assert future.done() and not future.cancelled()
            error = future.exception()
            assert type(error) is RuntimeError
            assert error.__cause__ is interrupt
            assert_names_loader(error)
        # Run one more iteration so that the task sees its failure and any
        # stop request queued while the interrupt propagated is consumed.
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert type(task.exception()) is RuntimeError
        assert loader.cache_map == {}
        # The loader is not wedged: the next load runs a new batch.
        loader.load_fn = make_ok_fetch()
        assert loop.run_until_complete(loader.load(1)) == "ok-1"
    finally:
        _close_loop(loop)
    # The batch task itself ended with the interrupt, as asyncio tasks do, and
    # asyncio may log that when it is collected; nothing else may be logged.
    asyncio_errors.allow(f"exception={interrupt_type.__name__}()")


def make_ok_fetch() -> Any:
    async def fetch(keys: list[int]) -> list[str]:
        return [f"ok-{key}" for key in keys]

    return fetch


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


# ---------------------------------------------------------------- nesting


async def test_load_fn_may_load_from_the_same_loader(loader_cls: type) -> None:
    batches: list[list[tuple[str, int]]] = []

    async def factorial(keys: list[tuple[str, int]]) -> list[int]:
        batches.append(keys)
        smaller_keys = [(chain, n - 1) for chain, n in keys if n > 1]
        smaller = dict(zip(smaller_keys, await loader.load_many(smaller_keys)))
        return [1 if n <= 1 else n * smaller[(chain, n - 1)] for chain, n in keys]

    loader = loader_cls(factorial)
    assert await asyncio.gather(loader.load(("a", 4)), loader.load(("b", 3))) == [24, 6]
    assert batches == [[("a", 4), ("b", 3)], [("a", 3), ("b", 2)], [("a", 2), ("b", 1)], [("a", 1)]]


async def test_load_fn_may_load_from_another_loader(loader_cls: type, make_recorder: Any) -> None:
    authors = make_recorder(lambda key: f"author{key}")

    async def posts(keys: list[int]) -> list[tuple[int, str]]:
        names = await asyncio.gather(*(author_loader.load(key % 2) for key in keys))
        return list(zip(keys, names))

    author_loader = loader_cls(authors)
    post_loader = loader_cls(posts)
    result = await asyncio.gather(*(post_loader.load(key) for key in range(4)))
    assert result == [(0, "author0"), (1, "author1"), (2, "author0"), (3, "author1")]
    assert authors.batches == [[0, 1]]


async def test_nested_load_of_a_key_in_flight_does_not_deadlock_other_keys(loader_cls: type) -> None:
    async def fetch(keys: list[int]) -> list[int]:
        if keys == [1]:
            # Key 2 is not in flight: it forms a later batch and completes.
            return [await loader.load(2) + 1]
        return [100 for _ in keys]

    loader = loader_cls(fetch)
    assert await asyncio.wait_for(loader.load(1), 5) == 101
