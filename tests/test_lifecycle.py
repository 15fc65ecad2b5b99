"""Loop binding, rebinding, shutdown, async with, repr and task names.

The contract: README, Semantics: Event loops and lifecycle.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from conftest import task_names_lag_behind_eager_steps

try:
    import uvloop
except ImportError:
    uvloop = None


async def idle(iterations: int = 15) -> None:
    for _ in range(iterations):
        await asyncio.sleep(0)


async def fetch(keys: list[Any]) -> list[Any]:
    return [f"value-of-{key!r}" for key in keys]


# ---------------------------------------------------------------- the test matrix itself


async def test_runs_on_the_parametrized_loop(request: pytest.FixtureRequest) -> None:
    loop = asyncio.get_running_loop()
    if "[uvloop" in request.node.name or "-uvloop" in request.node.name:
        assert uvloop is not None
        assert isinstance(loop, uvloop.Loop)
    else:
        assert type(loop).__module__.startswith("asyncio")
        assert uvloop is None or not isinstance(loop, uvloop.Loop)


# ---------------------------------------------------------------- binding


def test_no_running_loop_and_no_loop_argument(loader_cls: type) -> None:
    loader = loader_cls(fetch, name="users")
    with pytest.raises(RuntimeError) as info:
        loader.load(1)
    assert repr("users") in str(info.value)
    with pytest.raises(RuntimeError):
        loader.load_many([1])


def test_loop_argument_allows_load_before_the_loop_runs(loader_cls: type, loop_factory: Any) -> None:
    loop = loop_factory()
    try:
        loader = loader_cls(fetch, loop=loop)
        future = loader.load(1)
        many = loader.load_many([1, 2])
        assert future.get_loop() is loop
        assert many.get_loop() is loop
        assert loop.run_until_complete(future) == "value-of-1"
        assert loop.run_until_complete(many) == ["value-of-1", "value-of-2"]
    finally:
        loop.close()


def test_loop_argument_that_is_closed(loader_cls: type, loop_factory: Any) -> None:
    loop = loop_factory()
    loop.close()
    loader = loader_cls(fetch, loop=loop, name="users")
    with pytest.raises(RuntimeError, match="users"):
        loader.load(1)


async def test_binds_lazily_to_the_running_loop(loader_cls: type) -> None:
    loader = loader_cls(fetch)
    future = loader.load(1)
    assert future.get_loop() is asyncio.get_running_loop()
    assert await future == "value-of-1"


def test_rebinds_to_a_new_loop_when_idle_and_keeps_the_cache(
    loader_cls: type, loop_factory: Any, make_recorder: Any
) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)

    async def use(keys: list[int]) -> list[Any]:
        return await loader.load_many(keys)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(use([1, 2])) == ["value-of-1", "value-of-2"]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(use([1, 3])) == ["value-of-1", "value-of-3"]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(use([3])) == ["value-of-3"]
    assert recorder.batches == [[1, 2], [3]]


def test_rebinds_from_the_loop_argument_when_idle(loader_cls: type, loop_factory: Any) -> None:
    first = loop_factory()
    try:
        loader = loader_cls(fetch, loop=first)
        assert first.run_until_complete(loader.load(1)) == "value-of-1"
    finally:
        first.close()
    with asyncio.Runner(loop_factory=loop_factory) as runner:

        async def use() -> Any:
            future = loader.load(2)
            assert future.get_loop() is asyncio.get_running_loop()
            return await future

        assert runner.run(use()) == "value-of-2"


def test_use_from_another_loop_while_queued_raises(loader_cls: type, loop_factory: Any) -> None:
    home = loop_factory()
    try:
        loader = loader_cls(fetch, loop=home, name="users")
        queued = loader.load(1)

        async def intrude() -> None:
            with pytest.raises(RuntimeError) as info:
                loader.load(2)
            assert repr("users") in str(info.value)
            assert "loop" in str(info.value)
            with pytest.raises(RuntimeError):
                loader.load_many([3])

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(intrude())
        # The loader still works on its own loop.
        assert home.run_until_complete(queued) == "value-of-1"
    finally:
        home.close()


def test_use_from_another_loop_while_in_flight_raises(loader_cls: type, loop_factory: Any, make_recorder: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, name="users")
    with asyncio.Runner(loop_factory=loop_factory) as home, asyncio.Runner(loop_factory=loop_factory) as other:

        async def start() -> asyncio.Future[Any]:
            future = loader.load(1)
            for _ in range(50):
                if recorder.calls:
                    break
                await asyncio.sleep(0)
            assert recorder.calls == 1
            return future

        async def intrude() -> None:
            with pytest.raises(RuntimeError, match="users"):
                loader.load(2)

        async def finish(future: asyncio.Future[Any]) -> Any:
            recorder.release()
            return await future

        future = home.run(start())
        other.run(intrude())
        assert home.run(finish(future)) == "value-of-1"
        # Idle again: now it may move.
        assert other.run(finish_cached(loader)) == "value-of-1"


async def finish_cached(loader: Any) -> Any:
    return await loader.load(1)


def test_asyncio_run_twice(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)

    async def main(key: int) -> Any:
        return await loader.load(key)

    assert asyncio.run(main(1)) == "value-of-1"
    assert asyncio.run(main(1)) == "value-of-1"
    assert asyncio.run(main(2)) == "value-of-2"
    assert recorder.batches == [[1], [2]]


# ---------------------------------------------------------------- shutdown


async def test_shutdown_idle_returns_none(loader_cls: type) -> None:
    loader = loader_cls(fetch)
    assert await loader.shutdown() is None
    assert await loader.shutdown() is None


async def test_shutdown_cancels_the_scheduled_dispatch(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    single, many = loader.load(1), loader.load_many([2, 3])
    assert await loader.shutdown() is None
    assert single.cancelled() and many.cancelled()
    await idle()
    assert recorder.batches == []
    assert repr(loader).endswith("queued=0 in_flight=0>")


async def test_shutdown_cancels_running_batches_and_waits(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1)
    futures = [loader.load(1), loader.load(2)]
    await spin(lambda: recorder.calls == 2)
    queued = loader.load(3)
    assert await loader.shutdown() is None
    # shutdown waited for the batches: load_fn has seen its cancellation.
    assert sorted(recorder.cancelled) == [0, 1]
    assert all(future.cancelled() for future in (*futures, queued))
    assert loader.cache_map == {}
    assert repr(loader).endswith("queued=0 in_flight=0>")


async def test_shutdown_reports_errors_raised_while_cancelled(loader_cls: type, spin: Any) -> None:
    started: list[list[int]] = []

    async def stubborn(keys: list[int]) -> list[int]:
        started.append(keys)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError(f"cleanup failed for {keys}") from None
        return keys

    loader = loader_cls(stubborn, max_batch_size=1, name="users")
    futures = [loader.load(1), loader.load(2)]
    await spin(lambda: len(started) == 2)
    group = await loader.shutdown()
    assert isinstance(group, ExceptionGroup)
    assert repr("users") in str(group)
    assert sorted(str(error) for error in group.exceptions) == ["cleanup failed for [1]", "cleanup failed for [2]"]
    assert all(type(error) is ValueError for error in group.exceptions)
    for future in futures:
        assert future.done()
        if not future.cancelled():
            assert isinstance(future.exception(), ValueError)
    assert await loader.shutdown() is None


async def test_shutdown_ignores_errors_not_caused_by_it(loader_cls: type, make_recorder: Any) -> None:
    loader = loader_cls(make_recorder(raises=ValueError("ordinary")))
    with pytest.raises(ValueError):
        await loader.load(1)
    assert await loader.shutdown() is None


async def test_loader_usable_after_shutdown(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder)
    loader.load(1)
    await loader.shutdown()
    assert await loader.load(2) == "value-of-2"
    assert await loader.load(1) == "value-of-1"
    assert await loader.shutdown() is None


async def test_shutdown_keeps_detached_and_other_loaders_alone(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    mine, theirs = loader_cls(recorder), loader_cls(recorder)
    other = theirs.load("x")
    await spin(lambda: recorder.calls == 1)
    assert await mine.shutdown() is None
    assert not other.done()
    recorder.release()
    assert await other == "value-of-'x'"


def test_shutdown_from_a_new_loop(loader_cls: type, loop_factory: Any) -> None:
    loader = loader_cls(fetch)
    with asyncio.Runner(loop_factory=loop_factory) as runner:

        async def use() -> Any:
            return await loader.load(1)

        runner.run(use())
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(loader.shutdown()) is None


# ---------------------------------------------------------------- async with


async def test_async_with_returns_the_loader_and_shuts_down(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    async with loader_cls(recorder) as loader:
        assert isinstance(loader, loader_cls)
        assert await loader.load(1) == "value-of-1"
        pending = loader.load(2)
    assert pending.cancelled()
    assert recorder.batches == [[1]]


async def test_async_with_propagates_exceptions(loader_cls: type) -> None:
    loader = loader_cls(fetch)
    with pytest.raises(LookupError):
        async with loader:
            raise LookupError("inside")
    # Exited: it can be entered again.
    async with loader as again:
        assert await again.load(1) == "value-of-1"


async def test_async_with_cannot_be_reentered(loader_cls: type) -> None:
    loader = loader_cls(fetch, name="users")
    async with loader:
        with pytest.raises(RuntimeError) as info:
            async with loader:
                pass  # pragma: no cover
        assert repr("users") in str(info.value)
        assert await loader.load(1) == "value-of-1"


async def test_async_with_binds_to_the_running_loop(loader_cls: type) -> None:
    async with loader_cls(fetch) as loader:
        assert loader.load(1).get_loop() is asyncio.get_running_loop()


# ---------------------------------------------------------------- names


async def test_batch_tasks_are_named_after_the_loader(loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder()
    loader = loader_cls(recorder, name="users", max_batch_size=1)
    await loader.load_many([1, 2])
    await loader.load(3)
    task_names = recorder.task_names
    if task_names_lag_behind_eager_steps():  # the names as they are once the tasks have them
        task_names = [task.get_name() for task in recorder.tasks]
    assert len(task_names) == 3
    for task_name in task_names:
        assert task_name is not None
        assert re.fullmatch(r"dloader:users:batch-\d+", task_name), task_name
    numbers = [int(task_name.rsplit("-", 1)[1]) for task_name in task_names]  # type: ignore[union-attr]
    assert len(set(numbers)) == 3


async def test_batch_task_name_defaults_to_qualname(loader_cls: type) -> None:
    names: list[str] = []
    tasks: list[asyncio.Task[Any]] = []

    async def load_users(keys: list[int]) -> list[int]:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        tasks.append(task)
        return keys

    await loader_cls(load_users).load(1)
    if task_names_lag_behind_eager_steps():  # the name as it is once the task has it
        names = [task.get_name() for task in tasks]
    assert names and names[0].startswith(f"dloader:{load_users.__qualname__}:batch-")


async def test_batch_runs_in_its_own_task(loader_cls: type) -> None:
    seen: list[Any] = []

    async def load_users(keys: list[int]) -> list[int]:
        seen.append(asyncio.current_task())
        return keys

    loader = loader_cls(load_users)
    await loader.load(1)
    assert seen[0] is not None and seen[0] is not asyncio.current_task()
