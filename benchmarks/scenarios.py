"""The scenarios: how each builds its loaders (``prepare``, untimed), what it times (``run``)
and what it must return (``expected``, checked after every measurement)."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc
from collections.abc import Sequence
from typing import Any

from .implementations import Implementation


async def load_fn(keys: Sequence[Any]) -> Sequence[Any]:
    """The batch function of every scenario: cheap, never awaits, so loader overhead dominates."""
    return keys


class Scenario:
    name = ""
    label = ""  # its row in the README's Performance table ("{tenth}" is N/10)
    description = ""
    #: Which floor variant stands for the least work this scenario needs.
    floor_kind = "plain"
    #: Timed scenarios report ns per key; the memory scenario reports bytes per key.
    unit = "ns"

    def __init__(self, n: int) -> None:
        self.n = n
        self.keys = list(range(n))

    def key_count(self) -> int:
        return self.n

    def prepare(self, impl: Implementation) -> Any:
        return impl.new(self.floor_kind, load_fn)

    async def run(self, state: Any) -> Any:
        raise NotImplementedError

    def expected(self) -> Any:
        return self.keys


class Gather(Scenario):
    name = "gather"
    label = "`gather` of N loads"
    description = "gather of N load()s of distinct keys, one batch"

    async def run(self, loader: Any) -> Any:
        return await asyncio.gather(*map(loader.load, self.keys))


class MaxBatch(Gather):
    name = "max_batch"
    label = "`max_batch_size={tenth}`"
    description = "the same with max_batch_size=N/10 (100 at N=1000): ten batches"
    floor_kind = "batched"

    def prepare(self, impl: Implementation) -> Any:
        return impl.new(self.floor_kind, load_fn, max(1, self.n // 10))


class Duplicates(Gather):
    name = "duplicates"
    label = "N loads over N/10 keys"
    description = "gather of N load()s over N/10 distinct keys, interleaved"
    floor_kind = "dedup"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        distinct = max(1, n // 10)
        self.keys = [index % distinct for index in range(n)]


class CacheHits(Scenario):
    name = "cache_hits"
    label = "N cache hits"
    description = "N load()s of primed keys, each awaited in turn (no loop iteration needed)"
    floor_kind = "cached"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        # One primed loader per implementation and loop, reused by every round: the
        # scenario is about a warm cache, priming is not timed.
        self._primed: dict[str, Any] = {}
        self._primed_loop: Any = None

    def prepare(self, impl: Implementation) -> Any:
        loop = asyncio.get_running_loop()
        if self._primed_loop is not loop:
            self._primed.clear()
            self._primed_loop = loop
        loader = self._primed.get(impl.name)
        if loader is None:
            loader = impl.new(self.floor_kind, load_fn)
            for key in self.keys:
                loader.prime(key, key)
            self._primed[impl.name] = loader
        return loader

    async def run(self, loader: Any) -> Any:
        load = loader.load
        values = []
        append = values.append
        for key in self.keys:
            append(await load(key))
        return values


class OneByOne(Scenario):
    name = "one_by_one"
    label = "N loads awaited one by one"
    description = "N load()s of distinct keys, each awaited before the next: N batches"

    run = CacheHits.run


class LoadMany(Scenario):
    name = "load_many"
    label = "`load_many` of N keys"
    description = "one load_many(N distinct keys); peers: their own; floor: gather of loads"

    async def run(self, loader: Any) -> Any:
        return await loader.load_many(self.keys)


class Tree(Scenario):
    name = "tree"
    label = "two-level tree (10 × {tenth})"
    description = "10 parents, then N/10 children of each once its parent resolved (2 loaders)"

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.parents = list(range(10))
        self.children_per_parent = max(1, n // 10)
        self.child_base = 1_000_000  # child keys never collide with parent keys

    def key_count(self) -> int:
        return len(self.parents) * (1 + self.children_per_parent)

    def prepare(self, impl: Implementation) -> Any:
        return impl.new(self.floor_kind, load_fn), impl.new(self.floor_kind, load_fn)

    async def run(self, loaders: Any) -> Any:
        parent_load = loaders[0].load
        child_load = loaders[1].load
        width = self.children_per_parent
        base = self.child_base

        async def subtree(parent_key: int) -> list[Any]:
            parent = await parent_load(parent_key)
            first = base + parent * width
            return await asyncio.gather(*map(child_load, range(first, first + width)))

        return await asyncio.gather(*map(subtree, self.parents))

    def expected(self) -> Any:
        width = self.children_per_parent
        return [
            list(range(self.child_base + parent * width, self.child_base + (parent + 1) * width))
            for parent in self.parents
        ]


class Memory(Scenario):
    name = "memory"
    label = "memory per pending key"
    description = "bytes allocated per pending key while N load()s of distinct keys wait"
    unit = "B"

    async def measure(self, impl: Implementation) -> tuple[float, Any]:
        """Bytes per key (tracemalloc) between the first load and the dispatch, and the values."""
        loader = self.prepare(impl)
        futures: list[Any] = [None] * self.n  # allocated before tracing starts
        keys = self.keys
        load = loader.load
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for index in range(self.n):
                futures[index] = load(keys[index])
            after = tracemalloc.get_traced_memory()[0]
        finally:
            if started_here:
                tracemalloc.stop()
        values = await asyncio.gather(*futures)
        return (after - before) / self.n, values

    async def run(self, loader: Any) -> Any:  # pragma: no cover - not a timed scenario
        raise NotImplementedError("memory is measured with measure()")


TIMED_SCENARIOS: tuple[type[Scenario], ...] = (Gather, MaxBatch, Duplicates, CacheHits, OneByOne, LoadMany, Tree)
ALL_SCENARIOS: tuple[type[Scenario], ...] = (*TIMED_SCENARIOS, Memory)
SCENARIO_NAMES = tuple(cls.name for cls in ALL_SCENARIOS)


def memory_unsupported() -> str | None:
    if sys.implementation.name != "cpython":
        return f"memory skipped: tracemalloc figures need CPython, not {sys.implementation.name}"
    return None


def make_scenarios(names: Sequence[str] | None, n: int) -> list[Scenario]:
    wanted = set(names or SCENARIO_NAMES)
    if memory_unsupported():
        wanted.discard(Memory.name)
    return [cls(n) for cls in ALL_SCENARIOS if cls.name in wanted]
