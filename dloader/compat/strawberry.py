"""strawberry's DataLoader on dloader's engine: replace ``from strawberry.dataloader import``
with ``from dloader.compat.strawberry import``, nothing else.

Same constructor (``load_fn``, ``max_batch_size``, ``cache``, ``loop``, ``cache_map`` as an
``AbstractCache`` of futures, ``cache_key_fn``), same methods (``load``, ``load_many``,
``prime``/``prime_many`` with ``force=``, ``clear``/``clear_many``/``clear_all``), same
results: per-key failures stay cached, a prime does not overwrite unless forced and answers
the loads still waiting in the batch, ``cache=False`` passes duplicate keys to ``load_fn``,
a wrong result count raises ``WrongNumberOfResultsReturned``. ``AbstractCache``,
``DefaultCache`` and ``WrongNumberOfResultsReturned`` are strawberry's own classes when
strawberry is installed.

dloader's fixes that change no result are kept: every ``load()`` returns its own future (a
caller's cancellation affects only itself), ``load_many`` is one future (not ``gather``), the
loader rebinds to a new event loop when idle, and batches wait for resolvers that yield
before loading.

Remaining differences:

- ``load(k)`` twice returns two futures, not the same one (``a is b`` is false); each
  resolves to the same value.
- A key whose every load was cancelled before its batch started is left out of the
  ``load_fn`` call (strawberry passed it, unless every key of the batch was cancelled).
- A whole-batch failure (``load_fn`` raising) is not cached: the next load retries.
  strawberry cached those rejected futures until cleared.
- ``clear(k)`` / ``clear_many`` of a key that is not cached does nothing; strawberry's
  ``DefaultCache`` raised ``KeyError``.
- With the default cache, ``loader.cache_map`` is a view of the loader's values (its
  ``get`` returns a done future), not a dict of futures; with your own ``AbstractCache``
  it is yours: it receives done futures of values, and keys still loading or failed are
  not in it (the loader tracks those). Keys must then be hashable.
- ``prime(k, exc)`` with an ``Exception`` instance fails the loads of ``k`` with it;
  strawberry returned the exception object as the value.
- A ``BaseException`` that is not an ``Exception`` (say ``KeyboardInterrupt``) in the
  results is returned as a value, as for any loader of dloader.
- strawberry's internals are not provided: the ``batch`` attribute, ``Batch``,
  ``LoaderTask``, ``dispatch``, ``dispatch_batch``, ``get_current_batch``,
  ``should_create_new_batch``. ``isinstance(loader, strawberry.dataloader.DataLoader)``
  is false.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from . import _shared, core_class

if TYPE_CHECKING:
    from .._loader_py import DataLoader as _CoreLoader
else:
    _CoreLoader = core_class(globals())

try:  # strawberry's own classes, so `except`/`isinstance` with strawberry's names keep working
    from strawberry.dataloader import AbstractCache, DefaultCache
    from strawberry.exceptions import WrongNumberOfResultsReturned
except ImportError:  # strawberry is not installed: the same API, defined here
    from ._strawberry_types import (  # type: ignore[assignment]
        AbstractCache,
        DefaultCache,
        WrongNumberOfResultsReturned,
    )

__all__ = ("AbstractCache", "DataLoader", "DefaultCache", "WrongNumberOfResultsReturned")

_K = TypeVar("_K")
_V = TypeVar("_V")

# The core class's own properties, which the shim's cache_map overrides (for reaching the core's values).
_CORE_ATTRIBUTES: Any = _CoreLoader


class _LoaderCache(AbstractCache[Any, Any]):
    """``loader.cache_map`` of a loader with the default cache: strawberry's interface over its values."""

    def __init__(self, loader: DataLoader[Any, Any]) -> None:
        self._loader = loader

    def get(self, key: Any) -> asyncio.Future[Any] | None:
        loader = self._loader
        values = _CORE_ATTRIBUTES.cache_map.__get__(loader)
        cache_key_fn = loader.cache_key_fn
        cache_key = key if cache_key_fn is None else cache_key_fn(key)
        if cache_key not in values:
            return None
        future = _shared.loop_for_futures(loader._given_loop).create_future()
        future.set_result(values[cache_key])
        return future

    def set(self, key: Any, value: asyncio.Future[Any]) -> None:
        loader = self._loader

        def store(future: asyncio.Future[Any]) -> None:
            if not future.cancelled():
                error = future.exception()
                loader.prime(key, future.result() if error is None else error, force=True)

        if value.done():
            store(value)
        else:
            value.add_done_callback(store)

    def delete(self, key: Any) -> None:
        self._loader.clear(key)

    def clear(self) -> None:
        self._loader.clear_all()


class DataLoader(_CoreLoader[_K, _V]):
    """strawberry's ``DataLoader``: same arguments and results, dloader's batching and futures."""

    def __init__(
        self,
        load_fn: Callable[[list[_K]], Awaitable[Any]],
        max_batch_size: int | None = None,
        cache: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        cache_map: AbstractCache[_K, _V] | None = None,
        cache_key_fn: Callable[[_K], Hashable] | None = None,
    ) -> None:
        if not callable(load_fn):
            raise TypeError(f"DataLoader: load_fn must be callable, got {type(load_fn).__name__}")
        # The core holds nothing that refers back to the loader (no bound methods): no reference cycle.
        self._batch_call = _StrawberryBatchCall(load_fn)
        self._given_loop = loop
        self._custom_cache = cache_map
        # With cache=False each load is its own cache key; prime() finds the queued ones here.
        self._occurrences = _shared.OccurrenceTracker()
        core_cache_map: Any = None
        core_key_fn: Any = cache_key_fn
        if not cache:
            core_key_fn = self._occurrences
        elif cache_map is not None:
            # The user's cache applies its own key function to the raw keys, as strawberry's caches do.
            core_key_fn = None
            core_cache_map = self._future_view(cache_map)
        super().__init__(
            self._batch_call,
            max_batch_size or None,  # strawberry reads 0 as "no limit"
            cache,
            loop,
            core_cache_map,
            cache_key_fn=core_key_fn,
            name=_shared_name(load_fn),
            cache_errors=True,
        )

    # ------------------------------------------------------------ strawberry's attributes

    @property
    def load_fn(self) -> Callable[[list[_K]], Awaitable[Any]]:
        return self._batch_call.load_fn

    @load_fn.setter
    def load_fn(self, value: Callable[[list[_K]], Awaitable[Any]]) -> None:
        if not callable(value):
            raise TypeError(f"DataLoader {self.name!r}: load_fn must be callable, got {type(value).__name__}")
        self._batch_call.load_fn = value

    @property  # type: ignore[override]
    def cache_map(self) -> AbstractCache[_K, _V]:
        """The cache as strawberry's interface: your ``AbstractCache``, or a view of the loader's values."""
        if self._custom_cache is not None:
            return self._custom_cache
        return _LoaderCache(self)

    @cache_map.setter
    def cache_map(self, value: AbstractCache[_K, _V]) -> None:
        """Cache in ``value`` from now on (its futures, its key function), as assigning it in strawberry does."""
        for method in ("get", "set", "delete", "clear"):
            if not callable(getattr(value, method, None)):
                raise TypeError(f"DataLoader {self.name!r}: cache_map must be an AbstractCache; it has no {method}()")
        if isinstance(value, _LoaderCache) and value._loader is self:  # its own default view: nothing to change
            return
        self._custom_cache = value
        _CORE_ATTRIBUTES.cache_map.__set__(self, self._future_view(value))
        if self.cache:
            _CORE_ATTRIBUTES.cache_key_fn.__set__(self, None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, else the ``loop=`` given, else asyncio's current loop (as strawberry)."""
        return _shared.running_or_given_loop(self._given_loop)

    # ------------------------------------------------------------ strawberry's methods

    def load_many(self, keys: Iterable[_K]) -> asyncio.Future[list[_V]]:  # type: ignore[override]
        """One future of the values for ``keys`` (strawberry gathered one future per key)."""
        if isinstance(keys, (str, bytes, bytearray)):  # strawberry iterated them: one load per item
            keys = list(keys)  # type: ignore[arg-type]
        return super().load_many(keys)

    def clear(self, key: _K) -> None:
        if self.cache:
            super().clear(key)

    def clear_many(self, keys: Iterable[_K]) -> None:
        if self.cache:
            super().clear_many(keys)

    def clear_all(self) -> None:
        if self.cache:
            super().clear_all()

    def prime(self, key: _K, value: _V, force: bool = False) -> None:  # type: ignore[override]
        """Cache ``value`` unless ``key`` is cached or loading (``force=True``: always); answer its queued loads.

        Without a cache, only the loads of ``key`` still queued are answered.
        """
        if self.cache:
            super().prime(key, value, overwrite=force)
            return
        for occurrence in list(self._occurrences.live):
            if occurrence.key == key:
                # Answers the load if it is still queued (a running fetch keeps its waiters),
                # then forgets the value: nothing is cached without a cache.
                super().prime(occurrence, value)  # type: ignore[arg-type]
                super().clear(occurrence)  # type: ignore[arg-type]

    def prime_many(self, data: Mapping[_K, _V], force: bool = False) -> None:  # type: ignore[override]
        """``prime`` every pair of ``data``."""
        for key, value in data.items():
            self.prime(key, value, force)

    # ------------------------------------------------------------ internals

    def _future_view(self, cache: AbstractCache[_K, _V]) -> _shared.FutureCacheView:
        """The core's cache_map over a user's AbstractCache (which applies its own key function to raw keys)."""
        return _shared.FutureCacheView(
            cache.get,
            cache.set,
            cache.delete,
            cache.clear,
            _no_iteration,
            partial(_shared.loop_for_futures, self._given_loop),
        )


class _StrawberryBatchCall:
    """The core's load_fn: one batch under strawberry's contract (any awaitable of an iterable, one result per key)."""

    __slots__ = ("load_fn",)

    def __init__(self, load_fn: Callable[[list[Any]], Awaitable[Any]]) -> None:
        self.load_fn = load_fn

    async def __call__(self, keys: list[Any]) -> list[Any]:
        values = list(await self.load_fn(keys))
        if len(values) != len(keys):
            raise WrongNumberOfResultsReturned(expected=len(keys), received=len(values))
        return values


def _no_iteration() -> Iterator[Any]:
    """strawberry's AbstractCache cannot be iterated: the loader's repr counts its entries as 0."""
    return iter(())


def _shared_name(load_fn: Any) -> str:
    qualname = getattr(load_fn, "__qualname__", None)
    return qualname if isinstance(qualname, str) else repr(load_fn)
