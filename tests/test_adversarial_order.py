"""Issue 9 items 12 and 16: batches start in the order their first keys were requested, across
loaders too, and a load followed by a task that yields once before loading share one batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import SETTLE_LIMIT, Recorder


async def keep_the_loop_busy() -> None:
    """Keeps a callback in every loop iteration (the test cancels it)."""
    while True:  # noqa: ASYNC110 - yielding every iteration is the point, not waiting for a condition
        await asyncio.sleep(0)


@pytest.fixture(params=["idle", "busy"])
async def loop_state(request: pytest.FixtureRequest) -> Any:
    """An idle loop, or one where other tasks keep a callback ready in every iteration."""
    spinners = [asyncio.create_task(keep_the_loop_busy()) for _ in range(2)] if request.param == "busy" else []
    if spinners:
        await asyncio.sleep(0)
    yield request.param
    for spinner in spinners:
        spinner.cancel()
    await asyncio.gather(*spinners, return_exceptions=True)


def loaders_that_log_their_start(loader_cls: type, started: list[int], count: int = 4) -> list[Any]:
    def make(index: int) -> Any:
        async def fetch(keys: list[int]) -> list[int]:
            started.append(index)
            await asyncio.sleep(0)
            return keys

        return loader_cls(fetch, name=f"loader-{index}")

    return [make(index) for index in range(count)]


async def test_batches_of_four_loaders_start_in_request_order(loader_cls: type, loop_state: str) -> None:
    started: list[int] = []
    loaders = loaders_that_log_their_start(loader_cls, started)
    futures = [loader.load(index) for index, loader in enumerate(loaders)]
    async with asyncio.timeout(SETTLE_LIMIT):
        assert await asyncio.gather(*futures) == [0, 1, 2, 3]
    assert started == [0, 1, 2, 3]


async def test_batches_of_four_loaders_asked_by_four_tasks_start_in_request_order(
    loader_cls: type, loop_state: str
) -> None:
    started: list[int] = []
    loaders = loaders_that_log_their_start(loader_cls, started)

    async def ask(index: int) -> Any:
        return await loaders[index].load(index)

    async with asyncio.timeout(SETTLE_LIMIT):
        assert await asyncio.gather(*(ask(index) for index in range(4))) == [0, 1, 2, 3]
    assert started == [0, 1, 2, 3]


async def test_split_batches_start_in_request_order(loader_cls: type, loop_state: str) -> None:
    recorder = Recorder()
    loader = loader_cls(recorder, max_batch_size=2)
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.gather(*(loader.load(key) for key in [5, 3, 9, 1, 7]))
    assert recorder.batches == [[5, 3], [9, 1], [7]]


async def test_interleaved_loaders_start_in_order_of_their_first_keys(loader_cls: type, loop_state: str) -> None:
    started: list[int] = []
    loaders = loaders_that_log_their_start(loader_cls, started, count=3)
    futures = [loaders[2].load(0), loaders[0].load(1), loaders[2].load(2), loaders[1].load(3), loaders[0].load(4)]
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.gather(*futures)
    assert started == [2, 0, 1]


async def test_a_load_and_a_task_that_yields_once_share_a_batch(loader_cls: type) -> None:
    """On an idle asyncio loop, whatever the task factory (uvloop: documented, see the skip).

    Not on a busy loop: there the adaptive dispatch closes the batch after the first
    iteration in which no key arrived, and this task's keys come one iteration later.
    """
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip(
            "uvloop splits this as [A], [B, C, D]: batching it would cost every lone load a third "
            "loop iteration (README, Semantics: Batching)"
        )
    recorder = Recorder()
    loader = loader_cls(recorder)
    first = loader.load("A")

    async def after_one_yield() -> Any:
        await asyncio.sleep(0)
        return await loader.load_many(["B", "C", "D"])

    later = asyncio.create_task(after_one_yield())
    async with asyncio.timeout(SETTLE_LIMIT):
        await asyncio.gather(first, later)
    assert recorder.batches == [["A", "B", "C", "D"]]
