"""aiodataloader's DataLoader on dloader's engine: replace ``from aiodataloader import DataLoader``
with ``from dloader.compat.aiodataloader import DataLoader``, nothing else.

Same constructor (``batch_load_fn``, ``batch``, ``max_batch_size``, ``cache``,
``get_cache_key``, ``cache_map`` of futures, ``loop``), subclasses may override
``batch_load_fn`` and ``get_cache_key`` and set ``batch``, ``max_batch_size`` and ``cache`` as
class attributes; same results: failed keys stay cached (a whole-batch failure does not),
``prime`` does not overwrite and caches an ``Exception`` as a failure, ``cache=False`` passes
duplicate keys to the batch function, ``batch=False`` loads one key per call,
``load(None)`` raises ``TypeError``, a wrong result count fails the batch with aiodataloader's
``TypeError``, and ``clear``, ``clear_all`` and ``prime`` return the loader for chaining (so do
``clear_many`` and ``prime_many``, which dloader adds).

dloader's fixes that change no result are kept: every ``load()`` returns its own future (a
caller's cancellation affects only itself), ``load_many`` is one future (not ``gather``), no
event loop is looked up at construction (no DeprecationWarning, and the loader rebinds to a
new loop when idle), and batches wait for resolvers that yield before loading.

Remaining differences:

- ``load(k)`` twice returns two futures, not the same one (``a == b`` is false); each
  resolves to the same value. aiodataloader's ``test_coalesces_identical_requests`` asserts
  that identity.
- A key whose every load was cancelled before its batch started is left out of the
  ``batch_load_fn`` call (aiodataloader passed it), and a batch with no load left waiting
  is not run at all.
- ``prime(k, v)`` while ``k`` is queued but not yet dispatched answers its loads with ``v``
  (dloader never lets a prime race a fetch); aiodataloader ignored the prime and loaded it.
- ``batch=False`` loads each key in its own call, as aiodataloader does, but the call starts
  with the next dispatch (one loop iteration or more later) rather than at once.
- A ``cache_map`` you pass receives done futures of values; keys still loading or failed are
  not in it (the loader tracks those), and a pending future you put in it yourself is not
  waited for.
- Changing ``max_batch_size``, ``cache`` or ``batch`` after construction: ``max_batch_size``
  and ``cache`` take effect as in dloader (unless a subclass set them as class attributes);
  ``batch`` does not.
- ``isinstance(loader, aiodataloader.DataLoader)`` is false.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping, MutableMapping
from functools import partial
from inspect import iscoroutine, iscoroutinefunction
from typing import TYPE_CHECKING, Any, TypeVar

from . import _shared, core_class

if TYPE_CHECKING:
    from .._loader_py import DataLoader as _CoreLoader
else:
    _CoreLoader = core_class(globals())

__all__ = ("DataLoader",)

_K = TypeVar("_K")
_V = TypeVar("_V")
_Self = TypeVar("_Self", bound="DataLoader[Any, Any]")

# What a subclass may set as class attributes, and aiodataloader's defaults for them.
_CLASS_DEFAULTS: dict[str, Any] = {"batch": True, "max_batch_size": None, "cache": True}


class DataLoader(_CoreLoader[_K, _V]):
    """aiodataloader's ``DataLoader``: same arguments, overrides and results, dloader's batching and futures."""

    # Given as arguments or defined as methods by a subclass, as in aiodataloader (annotations only).
    batch_load_fn: Callable[[list[_K]], Coroutine[Any, Any, Iterable[_V | Exception]]]
    get_cache_key: Callable[[_K], Any]
    batch: bool

    def __init__(
        self,
        batch_load_fn: Callable[[list[_K]], Coroutine[Any, Any, Iterable[_V | Exception]]] | None = None,
        batch: bool | None = None,
        max_batch_size: int | None = None,
        cache: bool | None = None,
        get_cache_key: Callable[[_K], Any] | None = None,
        cache_map: MutableMapping[Any, asyncio.Future[_V]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._given_loop = loop
        if batch_load_fn is not None:
            self.batch_load_fn = batch_load_fn
        batch_fn = getattr(self, "batch_load_fn", None)
        function = batch_fn.func if isinstance(batch_fn, partial) else batch_fn
        if not iscoroutinefunction(function):
            # aiodataloader's check and message (an assert there)
            raise AssertionError(f"batch_load_fn must be coroutine. Received: {batch_fn}")
        self.batch = self._class_default("batch") if batch is None else batch
        max_batch_size = self._class_default("max_batch_size") if max_batch_size is None else max_batch_size
        cache = self._class_default("cache") if cache is None else cache
        core_key_fn: Any = None
        if get_cache_key is not None:
            self.get_cache_key = get_cache_key
            core_key_fn = get_cache_key
        elif "get_cache_key" in self.__dict__:  # a subclass's __init__ assigned one
            core_key_fn = self.__dict__["get_cache_key"]
        elif hasattr(type(self), "get_cache_key"):  # a subclass's method, called on the loader held weakly
            method: Any = type(self).get_cache_key
            core_key_fn = _shared.WeakMethodCall(self, method)
        else:
            self.get_cache_key = _same_key
        if not cache:
            core_key_fn = _shared.occurrence_key
        core_cache_map: Any = None
        if cache_map is not None:
            core_cache_map = _shared.FutureCacheView(
                cache_map.get, cache_map.__setitem__, cache_map.__delitem__, cache_map.clear, cache_map.__iter__,
                partial(_shared.loop_for_futures, loop),
            )  # fmt: skip
        super().__init__(
            _shared.WeakMethodCall(self, _call_batch_load_fn),
            1 if not self.batch else max_batch_size or None,
            bool(cache),
            loop,
            core_cache_map,
            cache_key_fn=core_key_fn,
            name=_loader_name(batch_fn),
            cache_errors=True,
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, else the ``loop=`` given, else asyncio's current loop."""
        return _shared.running_or_given_loop(self._given_loop)

    # ------------------------------------------------------------ aiodataloader's methods

    def load(self, key: _K) -> asyncio.Future[_V]:
        if key is None:
            raise TypeError(f"The loader.load() function must be called with a value, but got: {key}.")
        return _core_load(self, key)

    def load_many(self, keys: Iterable[_K]) -> asyncio.Future[list[_V]]:  # type: ignore[override]
        """One future of the values for ``keys`` (aiodataloader gathered one future per key)."""
        if not isinstance(keys, Iterable):
            raise TypeError(f"The loader.load_many() function must be called with Iterable<key> but got: {keys}.")
        keys = list(keys)
        if None in keys:
            raise TypeError("The loader.load() function must be called with a value, but got: None.")
        return super().load_many(keys)

    def clear(self: _Self, key: _K) -> _Self:  # type: ignore[override]
        if self.cache:
            super().clear(key)
        return self

    def clear_many(self: _Self, keys: Iterable[_K]) -> _Self:  # type: ignore[override]
        if self.cache:
            super().clear_many(keys)
        return self

    def clear_all(self: _Self) -> _Self:  # type: ignore[override]
        super().clear_all()
        return self

    def prime(self: _Self, key: _K, value: _V) -> _Self:  # type: ignore[override]
        """Cache ``value`` (an ``Exception`` as a failure) unless ``key`` is cached or loading."""
        if self.cache:
            super().prime(key, value, overwrite=False)
        return self

    def prime_many(self: _Self, data: Mapping[_K, _V]) -> _Self:  # type: ignore[override]
        if self.cache:
            for key, value in data.items():
                super().prime(key, value, overwrite=False)
        return self

    # ------------------------------------------------------------ internals

    def _class_default(self, name: str) -> Any:
        """A subclass's class attribute ``name``, else aiodataloader's default."""
        for cls in type(self).__mro__:
            if cls is DataLoader:
                break
            if name in cls.__dict__:
                return cls.__dict__[name]
        return _CLASS_DEFAULTS[name]


async def _call_batch_load_fn(loader: DataLoader[Any, Any], keys: list[Any]) -> list[Any]:
    """One batch: aiodataloader's contract (a coroutine of an iterable, one result per key)."""
    coroutine = loader.batch_load_fn(keys)
    if not coroutine or not iscoroutine(coroutine):
        raise TypeError(
            "DataLoader must be constructed with a function which accepts Iterable<key> and returns "
            f"Future<Iterable<value>>, but the function did not return a Coroutine: {coroutine}."
        )
    values = await coroutine
    if not isinstance(values, Iterable):
        raise TypeError(
            "DataLoader must be constructed with a function which accepts Iterable<key> and returns "
            f"Future<Iterable<value>>, but the function did not return a Future of a Iterable: {values}."
        )
    values = list(values)
    if len(values) != len(keys):
        raise TypeError(
            "DataLoader must be constructed with a function which accepts Iterable<key> and returns "
            "Future<Iterable<value>>, but the function did not return a Future of a Iterable with the same "
            f"length as the Iterable of keys.\n\nKeys:\n{keys}\n\nValues:\n{values}"
        )
    return values


# The core's load, called without a super() lookup: load() is the hot path.
_core_load = _CoreLoader.load


def _same_key(key: Any) -> Any:
    return key


def _loader_name(batch_fn: Any) -> str:
    qualname = getattr(batch_fn, "__qualname__", None)
    if isinstance(qualname, str):
        return qualname
    if isinstance(batch_fn, partial):
        return _loader_name(batch_fn.func)
    return repr(batch_fn)
