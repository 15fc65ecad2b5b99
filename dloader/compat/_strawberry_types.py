"""strawberry's cache interface and wrong-count error, for dloader.compat.strawberry without strawberry installed.

With strawberry installed the shim uses strawberry's own classes instead.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ("AbstractCache", "DefaultCache", "WrongNumberOfResultsReturned")

_K = TypeVar("_K")
_V = TypeVar("_V")


class WrongNumberOfResultsReturned(Exception):
    """load_fn returned more or fewer results than it was given keys."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"Received wrong number of results in dataloader, expected: {expected}, received: {received}")


class AbstractCache(ABC, Generic[_K, _V]):
    """A loader's cache as strawberry defines it: futures of values, by key."""

    @abstractmethod
    def get(self, key: _K) -> asyncio.Future[_V] | None: ...

    @abstractmethod
    def set(self, key: _K, value: asyncio.Future[_V]) -> None: ...

    @abstractmethod
    def delete(self, key: _K) -> None: ...

    @abstractmethod
    def clear(self) -> None: ...


class DefaultCache(AbstractCache[_K, _V]):
    """A dict of futures keyed by ``cache_key_fn(key)`` (the key itself by default)."""

    def __init__(self, cache_key_fn: Callable[[_K], Hashable] | None = None) -> None:
        self.cache_key_fn: Callable[[_K], Hashable] = cache_key_fn if cache_key_fn is not None else _same
        self.cache_map: dict[Hashable, asyncio.Future[_V]] = {}

    def get(self, key: _K) -> asyncio.Future[_V] | None:
        return self.cache_map.get(self.cache_key_fn(key))

    def set(self, key: _K, value: asyncio.Future[_V]) -> None:
        self.cache_map[self.cache_key_fn(key)] = value

    def delete(self, key: _K) -> None:
        del self.cache_map[self.cache_key_fn(key)]

    def clear(self) -> None:
        self.cache_map.clear()


def _same(key: Any) -> Hashable:
    return key  # type: ignore[no-any-return]
