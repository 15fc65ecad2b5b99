"""Issue 9 items 2, 3, 10 and 15: the loader's own tasks cancelled from outside, shutdown() that is
itself cancelled, concurrent shutdowns, and load_fn calls cancelled once nobody waits for them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import SETTLE_LIMIT, Recorder, assert_idle, loader_tasks, settle

KEYS = [0, 1, 2, 3, 4]


def value_of(key: Any) -> str:
    return f"value-of-{key!r}"


class OutsideCanceller:
    """Cancels every loader task as soon as it exists, as "cancel all other tasks" code does.

    A call_soon chain runs once per loop iteration. A task created during iteration N has
    its first step queued behind the chain's next link (or the chain runs after it in N),
    so the chain cancels it before that first step. A task started eagerly (an eager task
    factory) already ran its first step inside create_task: it is cancelled at its first
    suspension, i.e. while load_fn runs.
    """

    def __init__(self) -> None:
        self.cancelled: list[asyncio.Task[Any]] = []
        self._handle: asyncio.Handle | None = None

    def start(self) -> OutsideCanceller:
        self._tick()
        return self

    def _tick(self) -> None:
        for task in loader_tasks():
            if task not in self.cancelled:
                task.cancel()
                self.cancelled.append(task)
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def request_every_key(loader: Any) -> list[asyncio.Future[Any]]:
    """Loads, a joiner and a load_many over KEYS, as concurrent callers would."""
    return [loader.load(0), loader.load(1), loader.load(1), loader.load_many([2, 3, 4]), loader.load(4)]


async def assert_usable_afterwards(loader: Any, recorder: Recorder) -> None:
    """Every key loads again through a new load_fn call: nothing was left queued or in flight."""
    recorder.gated = False
    calls_before = recorder.calls
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load_many(KEYS) == [value_of(key) for key in KEYS]
    assert sorted(key for batch in recorder.batches[calls_before:] for key in batch) == KEYS


# ---------------------------------------------------------------- the loader's tasks, cancelled from outside


@pytest.mark.parametrize("max_batch_size", [None, 2])
async def test_loader_tasks_cancelled_before_their_first_step(loader_cls: type, max_batch_size: int | None) -> None:
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=max_batch_size)
    canceller = OutsideCanceller().start()
    try:
        futures = request_every_key(loader)
        async with asyncio.timeout(SETTLE_LIMIT):
            await asyncio.wait(futures)
    finally:
        canceller.stop()
    assert canceller.cancelled, "the loader ran no task at all"
    assert all(future.cancelled() for future in futures), futures
    await settle(loader)
    assert_idle(loader)
    await assert_usable_afterwards(loader, recorder)


@pytest.mark.parametrize("max_batch_size", [None, 2])
async def test_loader_tasks_cancelled_while_load_fn_runs(
    loader_cls: type, max_batch_size: int | None, spin: Any
) -> None:
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=max_batch_size)
    futures = request_every_key(loader)
    expected_calls = 1 if max_batch_size is None else 3
    await spin(lambda: recorder.calls == expected_calls)
    for task in loader_tasks():
        task.cancel()
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.wait(futures)
    assert all(future.cancelled() for future in futures), futures
    assert sorted(recorder.cancelled) == list(range(expected_calls))
    await settle(loader)
    assert_idle(loader)
    assert loader.cache_map == {}
    await assert_usable_afterwards(loader, recorder)


async def test_cancel_every_other_task_right_after_loading(loader_cls: type) -> None:
    """The usual shutdown code: cancel all tasks but the current one, with loads just queued."""
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=2)
    futures = request_every_key(loader)
    current = asyncio.current_task()
    for _ in range(3):  # whatever the loader started in the meantime goes too
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()
        await asyncio.sleep(0)
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.wait(futures)
    assert all(future.done() for future in futures)
    await settle(loader)
    assert_idle(loader)
    await assert_usable_afterwards(loader, recorder)


async def test_only_the_cancelled_tasks_keys_are_affected(loader_cls: type, spin: Any) -> None:
    """Cancelling one split batch's task from outside leaves the other batches alone."""
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1)
    first, second = loader.load("first"), loader.load("second")
    await spin(lambda: recorder.calls == 2)
    victim = recorder.tasks[recorder.batches.index(["first"])]
    assert victim is not None
    victim.cancel()
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.wait([first])
    assert first.cancelled()
    assert not second.done()
    recorder.release_all()
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await second == value_of("second")
    await settle(loader)
    assert_idle(loader)


# ---------------------------------------------------------------- shutdown() is itself cancellable


class Stubborn:
    """A load_fn that keeps running after it was cancelled, until the test lets it finish.

    The test releases it once it has made its point; a safety timer releases it after
    SETTLE_LIMIT so a core that waits for it regardless fails the test instead of hanging.
    """

    def __init__(self, cleanup_error: type[Exception] | None = None) -> None:
        self.cleanup_error = cleanup_error
        self.started = 0
        self.cancelled = 0
        self.released = asyncio.Event()
        asyncio.get_running_loop().call_later(SETTLE_LIMIT, self.released.set)

    async def __call__(self, keys: list[Any]) -> list[Any]:
        self.started += 1
        try:
            await asyncio.get_running_loop().create_future()  # never resolved: only cancellation ends it
        except asyncio.CancelledError:
            self.cancelled += 1
            await self.released.wait()
            if self.cleanup_error is not None:
                raise self.cleanup_error(f"cleanup failed for {keys}") from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover


async def finish_stubborn_batches(loader: Any, stubborn: Stubborn, futures: list[asyncio.Future[Any]]) -> None:
    stubborn.released.set()
    await settle(loader)
    assert all(future.done() for future in futures)
    assert_idle(loader)


async def test_shutdown_under_asyncio_timeout_raises_timeout_error(loader_cls: type, spin: Any) -> None:
    stubborn = Stubborn()
    loader = loader_cls(stubborn)
    future = loader.load(1)
    await spin(lambda: stubborn.started == 1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await loader.shutdown()
    assert not stubborn.released.is_set(), "shutdown() returned only because the safety timer released load_fn"
    await finish_stubborn_batches(loader, stubborn, [future])
    assert future.cancelled()


async def test_shutdown_under_wait_for_raises_timeout_error(loader_cls: type, spin: Any) -> None:
    stubborn = Stubborn()
    loader = loader_cls(stubborn)
    future = loader.load(1)
    await spin(lambda: stubborn.started == 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(loader.shutdown(), 0.05)
    assert not stubborn.released.is_set(), "shutdown() returned only because the safety timer released load_fn"
    await finish_stubborn_batches(loader, stubborn, [future])


async def test_task_group_cancels_the_task_awaiting_shutdown(loader_cls: type, spin: Any) -> None:
    stubborn = Stubborn()
    loader = loader_cls(stubborn)
    future = loader.load(1)
    await spin(lambda: stubborn.started == 1)
    carried_on: list[bool] = []

    async def stop_the_loader() -> None:
        await loader.shutdown()
        carried_on.append(True)

    async def fail_once_shutdown_waits() -> None:
        await spin(lambda: stubborn.cancelled == 1)
        raise LookupError("a sibling failed")

    stoppers: list[asyncio.Task[None]] = []

    async def run_both() -> None:
        async with asyncio.TaskGroup() as group:
            stoppers.append(group.create_task(stop_the_loader()))
            group.create_task(fail_once_shutdown_waits())

    with pytest.raises(ExceptionGroup) as info:
        await run_both()
    assert [type(error) for error in info.value.exceptions] == [LookupError]
    assert stoppers[0].cancelled()
    assert carried_on == [], "the cancelled task carried on past `await loader.shutdown()`"
    assert not stubborn.released.is_set(), "the TaskGroup ended only because the safety timer released load_fn"
    await finish_stubborn_batches(loader, stubborn, [future])


async def test_concurrent_shutdowns_both_return_the_errors(loader_cls: type, spin: Any) -> None:
    stubborn = Stubborn(cleanup_error=ValueError)
    loader = loader_cls(stubborn, max_batch_size=1, name="users")
    futures = [loader.load(1), loader.load(2)]
    await spin(lambda: stubborn.started == 2)
    first = asyncio.create_task(loader.shutdown())
    second = asyncio.create_task(loader.shutdown())
    await spin(lambda: stubborn.cancelled == 2)
    stubborn.released.set()
    async with asyncio.timeout(SETTLE_LIMIT):
        groups = await asyncio.gather(first, second)
    for group in groups:
        assert isinstance(group, ExceptionGroup), groups
        assert sorted(str(error) for error in group.exceptions) == ["cleanup failed for [1]", "cleanup failed for [2]"]
    assert {id(error) for error in groups[0].exceptions} == {id(error) for error in groups[1].exceptions}
    assert all(future.done() for future in futures)
    await settle(loader)
    assert_idle(loader)
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.shutdown() is None


# ---------------------------------------------------------------- a load_fn call nobody waits for is cancelled


def cancel_load_callers(loader: Any) -> tuple[list[asyncio.Future[Any]], Any]:
    futures = [loader.load(1), loader.load(1), loader.load(2)]

    def cancel() -> None:
        for future in futures:
            future.cancel()

    return futures, cancel


def cancel_load_many_caller(loader: Any) -> tuple[list[asyncio.Future[Any]], Any]:
    many = loader.load_many([1, 2, 2])
    return [many], many.cancel


def cancel_mixed_callers(loader: Any) -> tuple[list[asyncio.Future[Any]], Any]:
    futures = [loader.load(1), loader.load_many([1, 2])]

    def cancel() -> None:
        for future in futures:
            future.cancel()

    return futures, cancel


def cancel_awaiting_tasks(loader: Any) -> tuple[list[asyncio.Future[Any]], Any]:
    async def wait_for_one() -> Any:
        return await loader.load(1)

    async def wait_for_many() -> Any:
        return await loader.load_many([1, 2])

    tasks = [asyncio.create_task(wait_for_one()), asyncio.create_task(wait_for_many())]

    def cancel() -> None:
        for task in tasks:
            task.cancel()

    return list(tasks), cancel


@pytest.mark.parametrize(
    "callers",
    [cancel_load_callers, cancel_load_many_caller, cancel_mixed_callers, cancel_awaiting_tasks],
    ids=["loads", "load_many", "mixed", "awaiting-tasks"],
)
async def test_load_fn_cancelled_once_every_caller_has_gone(loader_cls: type, spin: Any, callers: Any) -> None:
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder)
    futures, cancel = callers(loader)
    await spin(lambda: recorder.calls == 1)
    assert recorder.batches == [[1, 2]]
    cancel()
    await spin(lambda: recorder.cancelled == [0])
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.wait(futures)
    assert all(future.cancelled() for future in futures)
    await settle(loader)
    assert_idle(loader)
    assert loader.cache_map == {}
    recorder.gated = False
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await loader.load_many([1, 2]) == [value_of(1), value_of(2)]
    assert recorder.batches[-1] == [1, 2]


async def test_load_fn_keeps_running_while_one_key_is_wanted(loader_cls: type, spin: Any) -> None:
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder)
    gone = [loader.load(1), loader.load(1)]
    wanted = loader.load(2)
    await spin(lambda: recorder.calls == 1)
    for future in gone:
        future.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert recorder.cancelled == [], "load_fn was cancelled although key 2 is still wanted"
    recorder.release()
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await wanted == value_of(2)
    await settle(loader)
    assert_idle(loader)


async def test_only_the_unwanted_split_batch_is_cancelled(loader_cls: type, spin: Any) -> None:
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder, max_batch_size=1)
    unwanted, wanted = loader.load("unwanted"), loader.load("wanted")
    await spin(lambda: recorder.calls == 2)
    unwanted.cancel()
    unwanted_call = recorder.batches.index(["unwanted"])
    await spin(lambda: recorder.cancelled == [unwanted_call])
    recorder.release(recorder.batches.index(["wanted"]))
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await wanted == value_of("wanted")
    await settle(loader)
    assert_idle(loader)


async def test_a_key_requested_again_before_the_cancellation_is_seen_keeps_its_call(
    loader_cls: type, spin: Any
) -> None:
    """A caller that cancels and a new caller of the same key in the same step: the key is still wanted."""
    recorder = Recorder(gated=True)
    loader = loader_cls(recorder)
    first = loader.load(1)
    await spin(lambda: recorder.calls == 1)
    first.cancel()
    again = loader.load(1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert recorder.cancelled == []
    recorder.release()
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await again == value_of(1)
    assert recorder.calls == 1
    await settle(loader)
    assert_idle(loader)
