"""The floor: the least work any future-returning loader must do, one class per scenario need.

Every benchmark figure is read as a ratio to it; it is a yardstick, not a loader to use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# The least work any loader that returns futures must do for a scenario, written as
# plainly as possible so that every other figure can be read as a ratio to it:
#
#   * one ``loop.create_future()`` per ``load()`` call (every caller gets its own future,
#     as dloader promises: README, Semantics: Futures and cancellation);
#   * one scheduled callback per batch: the batch task created at the first key of a batch
#     (a task is the least that can drive an ``async def load_fn`` that may really await);
#   * one ``load_fn`` call per batch, with a new list of keys;
#   * one ``set_result`` per ``load()`` call.
#
# and, per scenario, nothing more than the scenario strictly needs:
#
#   gather, awaited one by one, load_many, tree, memory   FloorLoader: no dedup, no cache
#   max_batch_size                                      FloorBatchedLoader: + a length check
#   duplicates                                          FloorDedupLoader: + a dict of waiters
#   cache hits                                          FloorCachedLoader: a dict lookup,
#                                                       create_future, set_result
#
# It binds to the running loop at construction (the benchmarks build it inside the loop),
# never checks whether a future was cancelled, never handles errors, keeps no reference to
# its batch task and has no shutdown: it is a yardstick, not a loader anyone should use.
# ``load_many`` is ``asyncio.gather`` of floor loads, as the peers do it.


class _NoCacheFloor:
    """What the floors without a cache share: load_many is a gather of their loads."""

    __slots__ = ()

    def load_many(self, keys: Any) -> asyncio.Future[list[Any]]:
        return asyncio.gather(*map(self.load, keys))

    def prime(self, key: Any, value: Any) -> None:
        raise NotImplementedError("this floor has no cache")


class FloorLoader(_NoCacheFloor):
    """Distinct keys, no cache, no de-duplication."""

    __slots__ = ("_create_future", "_create_task", "_futures", "_keys", "_load_fn")

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._load_fn = load_fn
        self._create_future = loop.create_future
        self._create_task = loop.create_task
        self._keys: list[Any] | None = None  # the open batch, None when nothing is queued
        self._futures: list[asyncio.Future[Any]] = []

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        keys = self._keys
        if keys is None:  # first key of a batch: schedule its dispatch
            keys = self._keys = []
            futures = self._futures = []
            self._create_task(self._dispatch(keys, futures))
        else:
            futures = self._futures
        keys.append(key)
        futures.append(future)
        return future

    async def _dispatch(self, keys: list[Any], futures: list[asyncio.Future[Any]]) -> None:
        if self._keys is keys:  # close the batch: later loads start a new one
            self._keys = None
        values = await self._load_fn(keys)
        for future, value in zip(futures, values):
            future.set_result(value)


class FloorBatchedLoader(FloorLoader):
    """FloorLoader plus ``max_batch_size``: a full batch is closed and a new one started."""

    __slots__ = ("_max_batch_size",)

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        super().__init__(load_fn)
        assert max_batch_size is not None
        self._max_batch_size = max_batch_size

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        keys = self._keys
        if keys is None or len(keys) == self._max_batch_size:
            keys = self._keys = []
            futures = self._futures = []
            self._create_task(self._dispatch(keys, futures))
        else:
            futures = self._futures
        keys.append(key)
        futures.append(future)
        return future


class FloorDedupLoader(_NoCacheFloor):
    """Duplicated keys: each key reaches ``load_fn`` once, each caller gets its own future."""

    __slots__ = ("_create_future", "_create_task", "_load_fn", "_waiters")

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._load_fn = load_fn
        self._create_future = loop.create_future
        self._create_task = loop.create_task
        # key -> the futures of its callers, in first-request order; None: nothing queued
        self._waiters: dict[Any, list[asyncio.Future[Any]]] | None = None

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = {}
            self._create_task(self._dispatch(waiters))
        same_key = waiters.get(key)
        if same_key is None:
            waiters[key] = [future]
        else:
            same_key.append(future)
        return future

    async def _dispatch(self, waiters: dict[Any, list[asyncio.Future[Any]]]) -> None:
        if self._waiters is waiters:
            self._waiters = None
        values = await self._load_fn(list(waiters))
        for futures, value in zip(waiters.values(), values):
            for future in futures:
                future.set_result(value)


class FloorCachedLoader(FloorLoader):
    """Cache hits: one dict lookup, one create_future, one set_result.

    A miss falls through to the plain floor and is not written back (the scenario only
    ever hits primed keys, so writing back is work it does not need).
    """

    __slots__ = ("_cache",)

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        super().__init__(load_fn)
        self._cache: dict[Any, Any] = {}

    def load(self, key: Any) -> asyncio.Future[Any]:
        try:
            value = self._cache[key]
        except KeyError:
            return FloorLoader.load(self, key)
        future = self._create_future()
        future.set_result(value)
        return future

    def prime(self, key: Any, value: Any) -> None:
        self._cache[key] = value


FLOOR_CLASSES: dict[str, type] = {
    "plain": FloorLoader,
    "batched": FloorBatchedLoader,
    "dedup": FloorDedupLoader,
    "cached": FloorCachedLoader,
}
