"""The second-level cache protocol a DataLoader consults once per batch (``value_cache=``).

Dependency-free on purpose: the core imports ``MISS`` from here; ``dloader.redis`` implements it.

A ``ValueCache`` holds *values* (never futures) outside the loader, usually outside the
process, so that loaders in other requests, processes or machines can reuse them. The
loader calls it inside each batch, after de-duplication and before ``load_fn``:

1. ``await get_many(keys)``: one call for the batch's distinct keys; a value or ``MISS``
   per key. Hits answer their waiters; only misses go to ``load_fn``.
2. ``await set_many(items)``: one call, in a task the loader tracks, with the successes
   ``load_fn`` returned (failures are never written). Waiters never wait for it.
3. ``await delete_many(keys)`` after ``loader.clear(key)`` (awaited by
   ``loader.invalidate(keys)``) and ``await clear()`` after ``loader.clear_all()``.

Keys are the loader's cache keys (after ``cache_key_fn``). A ``get_many`` that raises, or
returns a sequence of the wrong length, makes every key of the batch a miss: a cache can
slow a load down (bounded by its ``timeout``) but never fail it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable

__all__ = ["MISS", "Miss", "ValueCache"]


class Miss(enum.Enum):
    """The type of :data:`MISS`, for annotations (``V | Miss``).

    An enum with one member, so that type checkers narrow ``if value is MISS``.
    """

    MISS = "MISS"

    def __repr__(self) -> str:
        return "<MISS>"

    __str__ = __repr__


#: Returned by :meth:`ValueCache.get_many` in place of a value the cache does not hold.
#: Compare with ``is``. ``None`` is a value like any other (a cached ``None``), not a miss.
MISS: Final = Miss.MISS


@runtime_checkable
class ValueCache(Protocol):
    """A batched, asynchronous store of values shared beyond one loader.

    Implementations decide where values live (Redis, memcached, a process-wide dict),
    how keys and values are encoded and how long entries live. They must be safe to
    share between loaders of the same event loop, and should bound every call by
    ``timeout``.
    """

    @property
    def timeout(self) -> float | None:
        """Seconds one call may take; ``shutdown()`` waits at most this long for pending writes.

        ``None`` means unbounded (``shutdown()`` then waits for the writes to finish).
        """
        ...

    async def get_many(self, keys: list[Any]) -> Sequence[Any]:
        """Return one entry per key, in order: the cached value or :data:`MISS`.

        Called once per batch with the batch's distinct cache keys. Must return a sequence
        of exactly ``len(keys)`` items; should return all ``MISS`` rather than raise when
        the store is unavailable.
        """
        ...

    async def set_many(self, items: list[tuple[Any, Any]]) -> None:
        """Store ``(key, value)`` pairs; called once per batch with the values ``load_fn`` returned."""
        ...

    async def delete_many(self, keys: list[Any]) -> None:
        """Remove the keys; raise if that could not be done (``invalidate()`` reports it)."""
        ...

    async def clear(self) -> None:
        """Make every entry of this cache unreachable; raise if that could not be done."""
        ...
