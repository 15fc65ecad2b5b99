"""Issue 9 items 1-3: a dispatch sweep. An action (shutdown, caller cancellations, outside cancellation
of the loader's tasks) hits the loader at each loop iteration after the first load, for every pattern."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from conftest import SETTLE_LIMIT, busy_parts, loader_tasks, settle

KEYS = [0, 1, 2, 3, 4]
ACTIONS = ["shutdown", "cancel-one-caller", "cancel-all-callers", "cancel-loader-tasks"]
PATTERNS = ["never-suspends", "suspends-once", "suspends-3-times", "waits-on-a-gate"]
#: Loop iterations between the first load and the action.
OFFSETS = range(8)
#: Each test runs every combination of these (32 cases): one test per case would be ~5000 tests.
CASES = list(itertools.product(OFFSETS, ["idle", "busy"], [None, 2]))


def value_of(key: Any) -> str:
    return f"value-of-{key!r}"


class SweepLoadFn:
    """A load_fn that suspends as its pattern says; the gate opens when the test says so."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.gate = asyncio.Event()
        self.batches: list[list[Any]] = []

    async def __call__(self, keys: list[Any]) -> list[Any]:
        self.batches.append(list(keys))
        if self.pattern == "suspends-once":
            await asyncio.sleep(0)
        elif self.pattern == "suspends-3-times":
            for _ in range(3):
                await asyncio.sleep(0)
        elif self.pattern == "waits-on-a-gate":
            await self.gate.wait()
        return [value_of(key) for key in keys]


async def keep_the_loop_busy() -> None:
    """Keeps a callback in every loop iteration (the test cancels it)."""
    while True:  # noqa: ASYNC110 - yielding every iteration is the point, not waiting for a condition
        await asyncio.sleep(0)


async def load_late(loader: Any) -> Any:
    """A caller that arrives one iteration after the others (a resolver that awaited first)."""
    await asyncio.sleep(0)
    return await loader.load_many([3, 4])


async def run_case(
    loader_cls: type, action: str, pattern: str, offset: int, loop_state: str, max_batch_size: int | None
) -> list[str]:
    """Run one case; return what went wrong (empty when every invariant holds)."""
    problems: list[str] = []
    load_fn = SweepLoadFn(pattern)
    loader = loader_cls(load_fn, max_batch_size=max_batch_size, name="sweep")
    spinners = [asyncio.create_task(keep_the_loop_busy()) for _ in range(2)] if loop_state == "busy" else []
    if spinners:
        await asyncio.sleep(0)
    callers: dict[str, asyncio.Future[Any]] = {"load 0": loader.load(0)}
    callers["load 1"] = loader.load(1)
    callers["load 1 again"] = loader.load(1)
    callers["load_many 2,3"] = loader.load_many([2, 3])
    callers["load 4"] = loader.load(4)
    callers["late load_many 3,4"] = asyncio.ensure_future(load_late(loader))
    expected: dict[str, Any] = {
        "load 0": value_of(0),
        "load 1": value_of(1),
        "load 1 again": value_of(1),
        "load_many 2,3": [value_of(2), value_of(3)],
        "load 4": value_of(4),
        "late load_many 3,4": [value_of(3), value_of(4)],
    }
    shutdown_result: Any = "not called"
    try:
        for _ in range(offset):
            await asyncio.sleep(0)
        if action == "shutdown":
            async with asyncio.timeout(SETTLE_LIMIT):
                shutdown_result = await loader.shutdown()
        elif action == "cancel-one-caller":
            callers["load 1"].cancel()
        elif action == "cancel-all-callers":
            for future in callers.values():
                future.cancel()
        else:
            for task in loader_tasks():
                task.cancel()
        load_fn.gate.set()
        async with asyncio.timeout(SETTLE_LIMIT):
            await asyncio.wait(callers.values())
        await settle(loader)
    except TimeoutError:
        problems.append("hung: " + ", ".join(name for name, future in callers.items() if not future.done()))
    finally:
        for spinner in spinners:
            spinner.cancel()
        await asyncio.gather(*spinners, return_exceptions=True)
    for name, future in callers.items():
        if not future.done():
            problems.append(f"{name}: still pending")
        elif future.cancelled():
            if action == "cancel-one-caller" and name != "load 1":
                problems.append(f"{name}: cancelled, but only 'load 1' was")
        elif future.exception() is not None:
            problems.append(f"{name}: failed with {future.exception()!r}")
        elif future.result() != expected[name]:
            problems.append(f"{name}: got {future.result()!r}")
    if shutdown_result not in ("not called", None):
        problems.append(f"shutdown() returned {shutdown_result!r}")
    for batch in load_fn.batches:
        if max_batch_size is not None and len(batch) > max_batch_size:
            problems.append(f"batch {batch} exceeds max_batch_size")
        if len(set(batch)) != len(batch):
            problems.append(f"batch {batch} repeats a key")
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current]
    if left:
        problems.append(f"tasks left pending: {left}")
    busy = busy_parts(loader)
    if busy:
        problems.append(f"loader not idle: {busy}")
    try:
        async with asyncio.timeout(SETTLE_LIMIT):
            fresh = await loader.load_many(KEYS)
        if fresh != [value_of(key) for key in KEYS]:
            problems.append(f"a fresh load_many got {fresh!r}")
    except TimeoutError:
        problems.append("a fresh load_many hung")
    except Exception as error:
        problems.append(f"a fresh load_many failed with {error!r}")
    busy = busy_parts(loader)
    if busy:
        problems.append(f"loader not idle after the fresh load: {busy}")
    return problems


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("action", ACTIONS)
async def test_dispatch_sweep(loader_cls: type, action: str, pattern: str) -> None:
    failures = []
    for offset, loop_state, max_batch_size in CASES:
        problems = await run_case(loader_cls, action, pattern, offset, loop_state, max_batch_size)
        if problems:
            failures.append(f"offset={offset} {loop_state} max_batch_size={max_batch_size}: " + "; ".join(problems))
            if any("hung" in problem for problem in problems):
                # Each further hang would cost SETTLE_LIMIT again; one is enough to know.
                failures.append("(the remaining cases were not run)")
                break
    assert not failures, f"{len(failures)} of {len(CASES)} cases failed:\n" + "\n".join(failures)
