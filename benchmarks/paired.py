"""Paired mode: implementations interleaved round by round in one process, on the CPU clock.

A round runs each implementation once (A B C, then B C A, ...); figures are medians of per-round ratios.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .implementations import Implementation
from .scenarios import Memory, Scenario


@dataclass
class Settings:
    n: int = 1000
    rounds: int = 150
    warmup: int = 3
    inner: int = 3  # fresh loaders run back to back per timed sample
    memory_repeats: int = 3
    timeout: float = 30.0  # seconds for one sample before the implementation is failed


@dataclass
class Failure:
    loop: str
    scenario: str
    impl: str
    message: str

    def __str__(self) -> str:
        return f"[{self.loop}] {self.scenario} / {self.impl}: {self.message}"


@dataclass
class Cell:
    """One scenario × implementation on one loop."""

    loop: str
    scenario: str
    impl: str
    unit: str
    keys: int
    samples: list[float] = field(default_factory=list)  # per key, one per round


@dataclass
class PairedResults:
    settings: Settings
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)

    def cell(self, loop: str, scenario: str, impl: str) -> Cell | None:
        return self.cells.get((loop, scenario, impl))


class SampleTimeout(Exception):
    """A loader gave no result within the sample's time limit."""


def summarize(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    if len(values) >= 2:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = median = q3 = values[0]
    return {"median": median, "q1": q1, "q3": q3, "min": min(values), "max": max(values), "n": len(values)}


def ratio_summary(cell: Cell, reference: Cell | None) -> dict[str, float] | None:
    """Median and spread of per-round ratios cell / reference (rounds where both ran)."""
    if reference is None or cell is reference:
        return None if reference is None else summarize([1.0] * len(cell.samples))
    ratios = [mine / theirs for mine, theirs in zip(cell.samples, reference.samples) if mine is not None and theirs]
    return summarize(ratios)


def value_summary(cell: Cell) -> dict[str, float] | None:
    return summarize(cell.samples)


def check_result(result: Any, expected: Any) -> str | None:
    """None when ``result`` is right, else what is wrong (the first wrong index of a list)."""
    if result == expected:
        return None
    if isinstance(result, list) and isinstance(expected, list) and len(result) == len(expected):
        for index, (got, want) in enumerate(zip(result, expected)):
            if got != want:
                return f"wrong result at index {index}: got {got!r:.80}, expected {want!r:.80}"
    return f"wrong result: got {result!r:.120}, expected {expected!r:.120}"


async def _drain() -> None:
    # Let done-callbacks a loader left behind run before the next timed sample.
    for _ in range(3):
        await asyncio.sleep(0)


async def timed_sample(
    scenario: Scenario, impl: Implementation, inner: int, limit: float, expected: Any, gc_off: bool | None = None
) -> float:
    """CPU ns per run of ``inner`` runs with fresh loaders; raises on wrong results or after ``limit`` s.

    ``gc_off``: None leaves the collector as it is; a bool collects first (the sample starts with
    empty young generations) and disables it during the timed region when true.
    """
    states = [scenario.prepare(impl) for _ in range(inner)]
    results: list[Any] = []
    append = results.append
    run = scenario.run
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    expired = []

    def on_timeout() -> None:  # watchdog: a loader that never resolves fails, not hangs
        expired.append(True)
        task.cancel()

    watchdog = loop.call_later(limit, on_timeout)
    if gc_off is not None:
        gc.collect()
        if gc_off:
            gc.disable()
    clock = time.thread_time_ns
    try:
        started = clock()
        with impl.callers_context():
            for state in states:
                append(await run(state))
        elapsed = clock() - started
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        raise SampleTimeout(f"no result after {limit:g} s") from None
    finally:
        if gc_off:
            gc.enable()
        watchdog.cancel()
    await _drain()
    for result in results:
        problem = check_result(result, expected)
        if problem is not None:
            raise AssertionError(problem)
    return elapsed / inner


async def _run_timed(
    loop_name: str, scenario: Scenario, impls: list[Implementation], settings: Settings, results: PairedResults
) -> None:
    expected = scenario.expected()
    keys = scenario.key_count()
    cells = {impl.name: Cell(loop_name, scenario.name, impl.name, "ns", keys) for impl in impls}
    alive = list(impls)
    for round_index in range(settings.warmup + settings.rounds):
        shift = round_index % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            if impl not in alive:
                continue
            try:
                elapsed = await timed_sample(scenario, impl, settings.inner, settings.timeout, expected)
            except Exception as error:  # wrong result, exception inside the loader, timeout
                alive.remove(impl)
                message = (
                    str(error)
                    if isinstance(error, (AssertionError, SampleTimeout))
                    else f"raised {type(error).__name__}: {error}"
                )
                results.failures.append(Failure(loop_name, scenario.name, impl.name, message))
                continue
            if round_index >= settings.warmup:
                cells[impl.name].samples.append(elapsed / keys)
    # Only implementations that ran every round are kept, so samples stay aligned by round.
    for impl in alive:
        results.cells[(loop_name, scenario.name, impl.name)] = cells[impl.name]


async def _run_memory(
    loop_name: str, scenario: Memory, impls: list[Implementation], settings: Settings, results: PairedResults
) -> None:
    expected = scenario.expected()
    for impl in impls:
        cell = Cell(loop_name, scenario.name, impl.name, "B", scenario.key_count())
        try:
            for repeat in range(1 + settings.memory_repeats):
                per_key, values = await scenario.measure(impl)
                await _drain()
                problem = check_result(values, expected)
                if problem is not None:
                    raise AssertionError(problem)
                if repeat:  # the first one also pays one-time allocations (type caches, ...)
                    cell.samples.append(per_key)
        except Exception as error:
            message = str(error) if isinstance(error, AssertionError) else f"raised {type(error).__name__}: {error}"
            results.failures.append(Failure(loop_name, scenario.name, impl.name, message))
            continue
        results.cells[(loop_name, scenario.name, impl.name)] = cell


async def _drive(
    loop_name: str,
    scenarios: list[Scenario],
    impls: list[Implementation],
    settings: Settings,
    results: PairedResults,
    progress: Callable[[str], None],
) -> None:
    for scenario in scenarios:
        started = time.perf_counter()
        if isinstance(scenario, Memory):
            await _run_memory(loop_name, scenario, impls, settings, results)
        else:
            await _run_timed(loop_name, scenario, impls, settings, results)
        progress(f"  [{loop_name}] {scenario.name:<11} {time.perf_counter() - started:6.1f} s")


def run_paired(
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]],
    scenarios: list[Scenario],
    impls: list[Implementation],
    settings: Settings,
    progress: Callable[[str], None] | None = None,
) -> PairedResults:
    results = PairedResults(settings)
    if progress is None:

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    # Everything imported so far goes to the permanent generation: collections during
    # timing then only scan what the round itself allocated.
    gc.collect()
    gc.freeze()
    try:
        for loop_name, factory in loops:
            loop = factory()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(_drive(loop_name, scenarios, impls, settings, results, progress))
            finally:
                asyncio.set_event_loop(None)
                loop.close()
            results.loops.append(loop_name)
    finally:
        gc.unfreeze()
    return results
