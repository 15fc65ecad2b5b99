"""Everything both DataLoader twins share that is not on the hot path.

Argument validation, error messages, the load-function protocol and the slow
paths of result handling live here once, so the two twins cannot drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import sys
import time
import types
from collections.abc import Awaitable, Generator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

__all__ = (
    "MAX_DISPATCH_WAITS",
    "LoadFunction",
)

# Invariant in the key type: load_fn receives a list, and a function declared to take
# a list[K] or a Sequence[K] both fit.
_K = TypeVar("_K")
_V_co = TypeVar("_V_co", covariant=True)

#: How many extra loop iterations a dispatch may wait for more keys to arrive.
#: Each wait happens only when keys arrived during the previous iteration, so a
#: loader that keeps receiving keys still dispatches after this many iterations.
MAX_DISPATCH_WAITS = 8

# The mapping methods a cache_map must have: the loader reads, writes, deletes,
# tests membership, counts, and empties it; `keys` tells a mapping from a list.
_CACHE_MAP_METHODS = ("__contains__", "__getitem__", "__setitem__", "__delitem__", "__len__", "clear", "keys")


class LoadFunction(Protocol[_K, _V_co]):
    """The batch function: a list of keys in, one result per key out.

    It returns a sequence of the same length and order as ``keys``, or a
    mapping from key to result; an ``Exception`` instance as a result fails
    only that key.
    """

    def __call__(
        self, keys: list[_K], /
    ) -> Awaitable[Sequence[_V_co | BaseException] | Mapping[Any, _V_co | BaseException]]: ...


# ---------------------------------------------------------------- construction


def loader_name(load_fn: Any, name: str | None) -> str:
    if name is not None:
        return name
    qualname = getattr(load_fn, "__qualname__", None)
    if isinstance(qualname, str):
        return qualname
    return repr(load_fn)


def _label(name: Any, load_fn: Any) -> str:
    """How messages name a loader: its name, else load_fn's qualified name, else 'DataLoader'."""
    if isinstance(name, str):
        return name
    qualname = getattr(load_fn, "__qualname__", None)
    return qualname if isinstance(qualname, str) else type(load_fn).__name__


def check_load_fn(label: str, load_fn: Any) -> Any:
    if not callable(load_fn):
        raise TypeError(
            f"DataLoader {label!r}: load_fn must be an async callable taking a list of keys, "
            f"got {type(load_fn).__name__} object {load_fn!r}"
        )
    return load_fn


def check_max_batch_size(label: str, max_batch_size: Any) -> Any:
    if max_batch_size is not None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise TypeError(
                f"DataLoader {label!r}: max_batch_size must be an int >= 1 or None, "
                f"got {type(max_batch_size).__name__} {max_batch_size!r}"
            )
        if max_batch_size < 1:
            raise ValueError(
                f"DataLoader {label!r}: max_batch_size must be an int >= 1 or None, got {max_batch_size!r}"
            )
    return max_batch_size


def batch_limit(max_batch_size: int | None) -> int:
    """max_batch_size as a machine-size count: no batch can hold more keys than sys.maxsize."""
    return sys.maxsize if max_batch_size is None or max_batch_size > sys.maxsize else max_batch_size


def check_max_concurrent_batches(label: str, value: Any) -> Any:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"DataLoader {label!r}: max_concurrent_batches must be an int >= 1 or None, "
                f"got {type(value).__name__} {value!r}"
            )
        if value < 1:
            raise ValueError(f"DataLoader {label!r}: max_concurrent_batches must be an int >= 1 or None, got {value!r}")
    return value


def check_bool(label: str, option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"DataLoader {label!r}: {option} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_cache_map(label: str, cache_map: Any) -> Any:
    missing = [method for method in _CACHE_MAP_METHODS if not hasattr(cache_map, method)]
    if missing:
        raise TypeError(
            f"DataLoader {label!r}: cache_map must be a MutableMapping; "
            f"{type(cache_map).__name__} has no {', '.join(missing)}"
        )
    return cache_map


def check_cache_key_fn(label: str, cache_key_fn: Any) -> Any:
    if cache_key_fn is not None and not callable(cache_key_fn):
        raise TypeError(
            f"DataLoader {label!r}: cache_key_fn must be callable or None, got {type(cache_key_fn).__name__}"
        )
    return cache_key_fn


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"DataLoader name must be a str, got {type(name).__name__} {name!r}")
    return name


def check_cache_errors(label: str, cache_errors: Any) -> Any:
    if not isinstance(cache_errors, bool) and not callable(cache_errors):
        raise TypeError(
            f"DataLoader {label!r}: cache_errors must be True, False or a callable (key, error) -> bool, "
            f"got {type(cache_errors).__name__} {cache_errors!r}"
        )
    return cache_errors


def check_instrumentation(label: str, instrumentation: Any) -> Any:
    """The instrumentation a new loader uses: the argument, or the process-wide default."""
    if instrumentation is DEFAULT:
        from . import instrumentation as _instrumentation  # a cycle at import time otherwise

        return _instrumentation.get_default()
    if instrumentation is not None and not (
        callable(getattr(instrumentation, "on_load", None)) and callable(getattr(instrumentation, "on_batch", None))
    ):
        raise TypeError(
            f"DataLoader {label!r}: instrumentation must have on_load() and on_batch() methods "
            f"(see dloader.instrumentation), got {type(instrumentation).__name__}"
        )
    return instrumentation


def check_value_cache(label: str, value_cache: Any) -> Any:
    if value_cache is not None:
        missing = [name for name in _VALUE_CACHE_METHODS if not callable(getattr(value_cache, name, None))]
        if missing:
            raise TypeError(
                f"DataLoader {label!r}: value_cache must implement dloader.value_cache.ValueCache; "
                f"{type(value_cache).__name__} has no {', '.join(missing)}"
            )
    return value_cache


_VALUE_CACHE_METHODS = ("get_many", "set_many", "delete_many", "clear")


def validate_arguments(
    load_fn: Any,
    max_batch_size: Any,
    cache: Any,
    cache_map: Any,
    cache_key_fn: Any,
    name: Any,
    loop: Any,
    cache_errors: Any = False,
    max_concurrent_batches: Any = None,
    stats: Any = False,
) -> str:
    """Raise a clear TypeError/ValueError for any bad constructor argument; return the loader's name."""
    if name is not None:
        check_name(name)
    label = _label(name, load_fn)
    check_load_fn(label, load_fn)
    check_max_batch_size(label, max_batch_size)
    check_bool(label, "cache", cache)
    if cache_map is not None:
        check_cache_map(label, cache_map)
    check_cache_key_fn(label, cache_key_fn)
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"DataLoader {label!r}: loop must be an asyncio event loop or None, got {type(loop).__name__}")
    check_cache_errors(label, cache_errors)
    check_max_concurrent_batches(label, max_concurrent_batches)
    check_bool(label, "stats", stats)
    return loader_name(load_fn, name)


class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


#: The default of ``instrumentation=``: the process-wide default instrumentation at creation.
DEFAULT: Any = _Default()


def copy_error(class_name: str) -> TypeError:
    return TypeError(
        f"{class_name} objects cannot be copied or pickled: a loader owns futures, tasks and an event "
        "loop; create a new loader with the same arguments instead"
    )


@types.coroutine
def yield_once() -> Generator[None, None, None]:
    """Let the loop run one round: the task resumes after the callbacks queued before it."""
    yield


def constructor_signature() -> inspect.Signature:
    """The constructor's signature, for the compiled class (whose __init__ is a slot)."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [
            inspect.Parameter("load_fn", positional),
            inspect.Parameter("max_batch_size", positional, default=None),
            inspect.Parameter("cache", positional, default=True),
            inspect.Parameter("loop", positional, default=None),
            inspect.Parameter("cache_map", positional, default=None),
            inspect.Parameter("cache_key_fn", keyword, default=None),
            inspect.Parameter("name", keyword, default=None),
            inspect.Parameter("cache_errors", keyword, default=False),
            inspect.Parameter("max_concurrent_batches", keyword, default=None),
            inspect.Parameter("stats", keyword, default=False),
            inspect.Parameter("instrumentation", keyword, default=DEFAULT),
            inspect.Parameter("value_cache", keyword, default=None),
        ]
    )


# ---------------------------------------------------------------- loop binding


def no_loop_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"DataLoader {name!r}: load() was called with no running event loop; call it from a "
        "coroutine, or create the loader with loop=... to use it before the loop runs"
    )


def closed_loop_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"DataLoader {name!r}: its event loop is closed and no other event loop is running; "
        "call load() from a coroutine on a running loop"
    )


def other_thread_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"DataLoader {name!r} was called from a thread other than its event loop's; a loader belongs "
        "to one event loop and its thread: create one loader per loop, or hand work to that loop "
        "with asyncio.run_coroutine_threadsafe()"
    )


def other_loop_error(name: str, busy: int) -> RuntimeError:
    return RuntimeError(
        f"DataLoader {name!r} is in use on another event loop ({busy} keys queued or in flight there); "
        "a loader belongs to one event loop at a time: create one loader per loop (per request)"
    )


def entered_twice_error(name: str) -> RuntimeError:
    return RuntimeError(f"DataLoader {name!r} is already entered by an 'async with' block; it cannot be re-entered")


def unhashable_key_error(name: str, key: Any, error: TypeError, has_cache_key_fn: bool = False) -> TypeError:
    if has_cache_key_fn:
        return TypeError(
            f"DataLoader {name!r}: cache_key_fn returned an unhashable cache key for key {key!r} ({error}); "
            "it must return a hashable identity (a str, int, tuple, frozenset...)"
        )
    return TypeError(
        f"DataLoader {name!r}: key {key!r} is unhashable ({error}); pass cache_key_fn=... "
        "to map such keys to a hashable identity"
    )


def check_key_hashable(
    name: str, cache_key: Any, key: Any, error: TypeError, has_cache_key_fn: bool = False
) -> TypeError | None:
    """After a TypeError from a cache or dict lookup, tell whether the key was the cause."""
    try:
        hash(cache_key)
    except TypeError as hash_error:
        return unhashable_key_error(name, key, hash_error, has_cache_key_fn)
    return None


def keys_argument_error(name: str, keys: Any) -> TypeError:
    return TypeError(
        f"DataLoader {name!r}: load_many() takes an iterable of keys, not a {type(keys).__name__} "
        f"({keys!r:.40}); pass a list, e.g. load_many([key]) or load_many(list_of_keys)"
    )


# ---------------------------------------------------------------- load_fn results


def not_awaitable_error(name: str, returned: Any) -> TypeError:
    if inspect.isasyncgen(returned):
        return TypeError(
            f"DataLoader {name!r}: load_fn returned an async generator; load_fn must be an async function "
            "that returns the results (a list or a mapping), not one that yields them"
        )
    return TypeError(
        f"DataLoader {name!r}: load_fn returned {type(returned).__name__}, not an awaitable; "
        "load_fn must be an async function (declare it with 'async def')"
    )


def await_iterator(name: str, awaitable: Any) -> Any:
    """What a task steps to await ``awaitable`` (an object with send/throw), or a TypeError."""
    if isinstance(awaitable, types.CoroutineType):
        return awaitable
    if isinstance(awaitable, types.GeneratorType) and awaitable.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE:
        return awaitable
    await_method = getattr(type(awaitable), "__await__", None)
    if await_method is None:
        raise not_awaitable_error(name, awaitable)
    iterator = await_method(awaitable)
    if not hasattr(iterator, "send") or not hasattr(iterator, "throw"):
        return _SendableIterator(iterator)
    return iterator


class _SendableIterator:
    """An __await__ iterator that has only __next__, made steppable like a generator."""

    __slots__ = ("iterator",)

    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator

    def send(self, value: Any) -> Any:
        return next(self.iterator)

    def throw(self, error: BaseException) -> Any:
        raise error

    def close(self) -> None:
        pass


@types.coroutine
def resume(iterator: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """Go on awaiting ``iterator``, whose first step already ran and yielded ``yielded``.

    The batch takes load_fn's first step by hand to learn whether it suspends (then its
    waiters are watched, so that a load_fn nobody waits for any more is cancelled); this
    is ``await`` for the steps after that. Only batches that suspend (do I/O) come here.
    """
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            iterator.close()
            raise
        except BaseException as error:
            try:
                yielded = iterator.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = iterator.send(sent)
            except StopIteration as stop:
                return stop.value


def wrong_length_error(name: str, n_keys: int, n_results: int) -> ValueError:
    return ValueError(
        f"DataLoader {name!r}: load_fn returned {n_results} results for {n_keys} keys; "
        "it must return exactly one result per key, in the order of the keys"
    )


def not_a_sequence_error(name: str, results: Any) -> TypeError:
    return TypeError(
        f"DataLoader {name!r}: load_fn must return a sequence (list, tuple) with one result per key, "
        f"or a mapping from key to result; got {type(results).__name__}"
    )


def interrupted_error(name: str, interrupt: BaseException) -> RuntimeError:
    error = RuntimeError(f"DataLoader {name!r}: load_fn was interrupted by {type(interrupt).__name__}")
    error.__cause__ = interrupt
    return error


def propagates(interrupt: BaseException) -> bool:
    """Whether a BaseException from load_fn leaves the batch task (after failing its waiters).

    KeyboardInterrupt and SystemExit propagate as asyncio propagates them; any other
    BaseException (a custom one, GeneratorExit raised by load_fn) only fails the waiters,
    so that asyncio logs no "exception was never retrieved" for a task nobody awaits.
    """
    return isinstance(interrupt, (KeyboardInterrupt, SystemExit))


def settable_error(name: str, error: BaseException) -> BaseException:
    """An error a future accepts: a future refuses StopIteration, so it is wrapped."""
    if isinstance(error, StopIteration):
        wrapped = RuntimeError(f"DataLoader {name!r}: StopIteration as a result; a future cannot hold it")
        wrapped.__cause__ = error
        return wrapped
    return error


def results_as_list(name: str, keys: list[Any], lookup_keys: list[Any], results: Any) -> list[Any]:
    """The slow path: turn a non-list/tuple result into a list, or raise TypeError/ValueError.

    ``lookup_keys`` are what a mapping result is keyed by: the keys themselves,
    or the cache keys when a cache_key_fn is set.
    """
    if isinstance(results, Mapping):
        missing = _MISSING
        out = []
        for key, lookup_key in zip(keys, lookup_keys):
            value = results.get(lookup_key, missing)
            out.append(KeyError(key) if value is missing else value)
        return out
    if isinstance(results, (str, bytes, bytearray, memoryview)) or not isinstance(results, Sequence):
        raise not_a_sequence_error(name, results)
    values: list[Any] = list(results)
    if len(values) != len(keys):
        raise wrong_length_error(name, len(keys), len(values))
    return values


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


# ---------------------------------------------------------------- repr / names


def loader_repr(class_name: str, name: str, cached: int, queued: int, in_flight: int) -> str:
    return f"<{class_name} {name!r} cached={cached} queued={queued} in_flight={in_flight}>"


def write_task_name(name: str) -> str:
    return f"dloader:{name}:value-cache"


def tokens_for(tokens: list[tuple[Any, Any]], cache_keys: list[Any]) -> list[Any]:
    """The tokens of the calls that wait for any of ``cache_keys`` (one split batch)."""
    if not tokens:
        return []
    wanted = set(cache_keys)
    out = []
    for queued, token in tokens:
        if type(queued) is list:
            if not wanted.isdisjoint(queued):
                out.append(token)
        elif queued in wanted:
            out.append(token)
    return out


def retrieve_exception(task: asyncio.Task[Any]) -> None:
    """Done callback of a batch task an interrupt left: it propagated, nobody awaits the task."""
    if not task.cancelled():
        task.exception()


def retrieve(tasks: list[asyncio.Task[Any]]) -> None:
    """Mark the exceptions of awaited tasks as retrieved: shutdown() already dealt with them."""
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


# ---------------------------------------------------------------- statistics


@dataclasses.dataclass(frozen=True)
class LoaderStats:
    """A snapshot of one loader's counters (``DataLoader(stats=True)``, ``loader.stats``).

    Snapshots add up (``a + b``), e.g. over the loaders of a request, and ``as_dict()``
    gives the fields by name.
    """

    loads: int = 0  #: keys asked for, through load() and load_many()
    cache_hits: int = 0  #: answered from cache_map
    joined: int = 0  #: answered by a fetch already queued or in flight
    batches: int = 0  #: load_fn calls
    batch_keys: int = 0  #: keys sent to load_fn
    batch_failures: int = 0  #: load_fn calls that raised or returned a bad shape
    key_failures: int = 0  #: keys failed by an Exception result or a missing mapping key
    value_cache_hits: int = 0  #: keys answered by the value_cache
    value_cache_errors: int = 0  #: value_cache calls that failed

    def __add__(self, other: LoaderStats) -> LoaderStats:
        if not isinstance(other, LoaderStats):
            return NotImplemented
        return LoaderStats(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Counters:
    """The mutable counters behind LoaderStats (the pure twin's; the compiled one keeps C ints)."""

    __slots__ = (
        "loads", "cache_hits", "joined", "batches", "batch_keys",
        "batch_failures", "key_failures", "value_cache_hits", "value_cache_errors",
    )  # fmt: skip

    def __init__(self) -> None:
        self.loads = 0
        self.cache_hits = 0
        self.joined = 0
        self.batches = 0
        self.batch_keys = 0
        self.batch_failures = 0
        self.key_failures = 0
        self.value_cache_hits = 0
        self.value_cache_errors = 0

    def snapshot(self) -> LoaderStats:
        return LoaderStats(*(getattr(self, field) for field in self.__slots__))


# ---------------------------------------------------------------- value cache


_log = logging.getLogger("dloader")
_last_logged: dict[tuple[str, str], float] = {}
_LOG_INTERVAL = 60.0


def log_cache_failure(name: str, operation: str, error: BaseException) -> None:
    """Log a value_cache failure at most once a minute per loader name and operation."""
    now = time.monotonic()
    key = (name, operation)
    last = _last_logged.get(key)
    if last is not None and now - last < _LOG_INTERVAL:
        return
    _last_logged[key] = now
    _log.warning(
        "DataLoader %r: value_cache.%s failed (%s: %s); loads fall back to load_fn",
        name,
        operation,
        type(error).__name__,
        error,
    )


def bad_cache_answer(name: str, keys: int, answer: Any) -> ValueError:
    return ValueError(
        f"value_cache.get_many returned {type(answer).__name__} "
        f"of {len(answer) if hasattr(answer, '__len__') else '?'} items for {keys} keys"
    )


def shutdown_error_group(name: str, errors: list[Exception]) -> ExceptionGroup[Exception] | None:
    if not errors:
        return None
    return ExceptionGroup(f"DataLoader {name!r}: load_fn raised while being cancelled by shutdown()", errors)
