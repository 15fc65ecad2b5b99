"""What both compat shims share: one cache key per load for ``cache=False``, and caches of futures.

Nothing here depends on the DataLoader twin a shim builds on.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

__all__ = ("FutureCacheView", "Occurrence", "OccurrenceTracker", "WeakMethodCall", "loop_for_futures", "occurrence_key")

_MISSING: Any = object()


class Occurrence:
    """One load of ``key`` with ``cache=False``: a cache key equal only to itself.

    Upstream loaders without a cache pass every load's key to the batch function, duplicates
    included; dloader joins equal keys. Giving each load its own cache key keeps them apart,
    and the core still passes the original keys to ``load_fn``.
    """

    __slots__ = ("key", "__weakref__")

    def __init__(self, key: Any) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"<load of {self.key!r}>"


def occurrence_key(key: Any) -> Any:
    """cache_key_fn of a loader without cache: a new Occurrence per load (an Occurrence stays itself)."""
    return key if type(key) is Occurrence else Occurrence(key)


class OccurrenceTracker:
    """cache_key_fn of a strawberry loader without cache: ``occurrence_key`` that remembers the live ones.

    strawberry's ``prime`` answers the queued loads of a key even without a cache; this finds
    them. Occurrences are held weakly: the core drops them when their batch ends.
    """

    __slots__ = ("live",)

    def __init__(self) -> None:
        self.live: weakref.WeakSet[Occurrence] = weakref.WeakSet()

    def __call__(self, key: Any) -> Any:
        if type(key) is Occurrence:
            return key
        occurrence = Occurrence(key)
        self.live.add(occurrence)
        return occurrence


class WeakMethodCall:
    """Calls ``function(loader, argument)`` for a loader held weakly.

    What a shim hands the core instead of a bound method of itself: a bound method would make a
    reference cycle, and a dropped loader would wait for the garbage collector (a core loader is
    freed at once). The core only calls it while the loader is alive (a batch holds its loader).
    """

    __slots__ = ("loader", "function")

    def __init__(self, loader: Any, function: Callable[[Any, Any], Any]) -> None:
        self.loader = weakref.ref(loader)
        self.function = function

    def __call__(self, argument: Any) -> Any:
        loader = self.loader()
        if loader is None:  # pragma: no cover -- the core calls it only from a live loader
            raise RuntimeError("the loader was garbage-collected")
        return self.function(loader, argument)


def running_or_given_loop(given: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    """The shims' ``loop`` attribute: the running loop, else the ``loop=`` given, else asyncio's current loop."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        if given is not None:
            return given
        return asyncio.get_event_loop()


def loop_for_futures(given: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    """The loop a shim creates done futures on: the running one, else the loader's ``loop=``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        if given is not None:
            return given
        raise RuntimeError(
            "this loader's cache_map holds futures: store values in it (prime) inside a running event loop, "
            "or create the loader with loop="
        ) from None


class FutureCacheView(MutableMapping[Any, Any]):
    """A cache of futures (strawberry's ``AbstractCache``, aiodataloader's ``cache_map``) seen as a cache of values.

    The core reads and writes values; this stores each as a done future in the user's
    cache and counts only a future that finished with a value as cached (dloader keeps
    failures beside the cache, and waits for pending loads itself).
    """

    __slots__ = ("_get", "_set", "_delete", "_clear", "_iterate", "_loop")

    def __init__(
        self,
        get: Callable[[Any], Any],
        set: Callable[[Any, asyncio.Future[Any]], None],
        delete: Callable[[Any], None],
        clear: Callable[[], None],
        iterate: Callable[[], Iterator[Any]],
        loop: Callable[[], asyncio.AbstractEventLoop],
    ) -> None:
        self._get = get
        self._set = set
        self._delete = delete
        self._clear = clear
        self._iterate = iterate
        self._loop = loop

    def _value_future(self, key: Any) -> Any:
        future = self._get(key)
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return _MISSING
        return future

    def __contains__(self, key: object) -> bool:
        return self._value_future(key) is not _MISSING

    def __getitem__(self, key: Any) -> Any:
        future = self._value_future(key)
        if future is _MISSING:
            raise KeyError(key)
        return future.result()

    def __setitem__(self, key: Any, value: Any) -> None:
        future = self._loop().create_future()
        future.set_result(value)
        self._set(key, future)

    def __delitem__(self, key: Any) -> None:
        if self._get(key) is None:
            raise KeyError(key)
        self._delete(key)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        future = self._get(key)
        if future is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._delete(key)
        if not future.done() or future.cancelled() or future.exception() is not None:
            return None if default is _MISSING else default
        return future.result()

    def clear(self) -> None:
        self._clear()

    def __iter__(self) -> Iterator[Any]:
        return self._iterate()

    def __len__(self) -> int:
        return sum(1 for _ in self._iterate())
