"""Everything both DataLoader twins share that is not on the hot path.

Argument validation, error messages, the load-function protocol and the slow
paths of result handling live here once, so the two twins cannot drift apart.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import sys
import types
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Awaitable, Coroutine, Generator, Mapping, Sequence
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


def validate_arguments(
    load_fn: Any,
    max_batch_size: Any,
    cache: Any,
    cache_map: Any,
    cache_key_fn: Any,
    name: Any,
    loop: Any,
) -> None:
    """Raise a clear TypeError/ValueError for any bad constructor argument."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"DataLoader name must be a str or None, got {type(name).__name__}")
    label = name if name is not None else getattr(load_fn, "__qualname__", None) or repr(load_fn)
    if not callable(load_fn):
        raise TypeError(
            f"DataLoader {label!r}: load_fn must be an async callable taking a list of keys, "
            f"got {type(load_fn).__name__} object {load_fn!r}"
        )
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
    if not isinstance(cache, bool):
        raise TypeError(f"DataLoader {label!r}: cache must be True or False, got {type(cache).__name__} {cache!r}")
    if cache_map is not None:
        missing = [method for method in _CACHE_MAP_METHODS if not hasattr(cache_map, method)]
        if missing:
            raise TypeError(
                f"DataLoader {label!r}: cache_map must be a MutableMapping; "
                f"{type(cache_map).__name__} has no {', '.join(missing)}"
            )
    if cache_key_fn is not None and not callable(cache_key_fn):
        raise TypeError(
            f"DataLoader {label!r}: cache_key_fn must be callable or None, got {type(cache_key_fn).__name__}"
        )
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"DataLoader {label!r}: loop must be an asyncio event loop or None, got {type(loop).__name__}")


def ready_queue(loop: asyncio.AbstractEventLoop) -> Any:
    """asyncio's queue of ready callbacks, or None where a loop does not expose one.

    On asyncio's own loops the dispatch reads it to tell whether anything else
    could still run (and queue keys) before the next I/O; it also implies that a
    0-delay timer fires after the callbacks queued before it (asyncio appends due
    timers behind them), which is what the dispatch's end-of-iteration checks use.
    uvloop turns a 0-delay timer into call_soon and exposes no queue, so there
    the checks are plain FIFO hops.
    """
    if isinstance(loop, asyncio.BaseEventLoop):
        ready = getattr(loop, "_ready", None)
        if isinstance(ready, collections.deque):
            return ready
    return None


# ---------------------------------------------------------------- batch tasks


@types.coroutine
def yield_once() -> Generator[None, None, None]:
    """Let the loop run one round: the task resumes after the callbacks queued before it."""
    yield


# Python 3.12+ starts a task eagerly: the batch's load_fn is called in the
# dispatch callback itself instead of one loop iteration later.
_EAGER_TASKS = sys.version_info >= (3, 12)


def start_task(loop: asyncio.AbstractEventLoop, coroutine: Any, name: str) -> asyncio.Task[None] | None:
    """Start a batch's coroutine in a named task, running its first step now.

    Returns the task while the coroutine is still running, None once it finished.

    Its first step calls load_fn; running it in the dispatch callback instead of
    one loop iteration later is what lets a lone load cost no more iterations
    than a task created at load() time (dloader 0.1.1's design).
    """
    if loop.get_task_factory() is not None or asyncio.current_task(loop) is not None:
        # The application's own task factory decides how tasks start; and a dispatch runs
        # from loop callbacks, never inside a task, but an eager start there would fail.
        return loop.create_task(coroutine, name=name)
    if _EAGER_TASKS:
        task = asyncio.Task(coroutine, loop=loop, name=name, eager_start=True)  # type: ignore[call-arg]
        return None if task.done() else task
    eager = _EagerStart(coroutine)
    context = contextvars.copy_context()
    task = asyncio.Task(eager, loop=loop, name=name, context=context)
    # The first step runs inside the task, as 3.12's eager_start does: current_task()
    # is the batch task (asyncio.timeout() works in load_fn), in the task's context.
    _enter_task(loop, task)
    try:
        context.run(eager.first_step)
    finally:
        _leave_task(loop, task)
    if eager.interrupt is not None:
        raise eager.interrupt
    # The coroutine may be finished although the task is not done until its next step.
    return task if eager.state is _SUSPENDED else None


class _EagerStart(Coroutine[Any, Any, Any]):
    """Python 3.11's eager task start: a coroutine whose first step already ran.

    The task's own first step then continues where that left off: it finishes
    at once if the coroutine did, waits on the future the coroutine is blocked
    on, or resumes it right away after a bare yield or an already-done future.
    """

    __slots__ = ("coroutine", "state", "value", "interrupt")

    def __init__(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.coroutine = coroutine
        self.state = _NOT_STARTED
        self.value: Any = None
        self.interrupt: BaseException | None = None

    def first_step(self) -> None:
        try:
            self.value = self.coroutine.send(None)
            self.state = _SUSPENDED
        except StopIteration as stop:
            self.state = _RETURNED
            self.value = stop.value
        except (KeyboardInterrupt, SystemExit) as interrupt:  # propagates now, as with eager_start
            self.state = _RAISED
            self.value = asyncio.CancelledError()
            self.interrupt = interrupt
        except BaseException as error:
            self.state = _RAISED
            self.value = error

    def send(self, value: Any) -> Any:
        state = self.state
        if state is _RUNNING:
            return self.coroutine.send(value)
        self.state = _RUNNING
        if state is _RETURNED:
            raise StopIteration(self.value)
        if state is _RAISED:
            error, self.value = self.value, None
            raise error
        blocked_on, self.value = self.value, None
        if blocked_on is None or blocked_on.done():
            if blocked_on is not None:
                blocked_on._asyncio_future_blocking = False
            return self.coroutine.send(None)
        return blocked_on  # the task now waits on the future the coroutine yielded

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self.state is _SUSPENDED:  # cancelled before the task's first step
            self.state = _RUNNING
            blocked_on, self.value = self.value, None
            if blocked_on is not None:
                blocked_on.cancel()
        elif self.state is not _RUNNING:
            self.state = _RUNNING
            self.value = None
            self.coroutine.close()
        if val is None and tb is None:
            return self.coroutine.throw(typ)
        return self.coroutine.throw(typ, val, tb)

    def close(self) -> None:
        self.coroutine.close()

    def __await__(self) -> Any:  # pragma: no cover - only ever driven by its task
        raise TypeError("_EagerStart is driven by its task, not awaited")


_NOT_STARTED = "not started"
_SUSPENDED = "suspended"
_RETURNED = "returned"
_RAISED = "raised"
_RUNNING = "running"


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
        ]
    )


# ---------------------------------------------------------------- loop binding


def checks_thread_id(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether load() may test "is this loop running here" by the loop's thread id.

    Python 3.11's C ``_get_running_loop()`` calls getpid() on every call (a system
    call, a third of a cached load); asyncio's loops record the thread running them
    in ``_thread_id``, and the loop running in this thread is the running loop.
    Python 3.12+ made ``_get_running_loop()`` cheap, and other loops do not say.
    """
    return sys.version_info < (3, 12) and isinstance(loop, asyncio.BaseEventLoop) and hasattr(loop, "_thread_id")


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


def unhashable_key_error(name: str, key: Any, error: TypeError) -> TypeError:
    return TypeError(
        f"DataLoader {name!r}: key {key!r} is unhashable ({error}); pass cache_key_fn=... "
        "to map such keys to a hashable identity"
    )


def check_key_hashable(name: str, cache_key: Any, key: Any, error: TypeError) -> TypeError | None:
    """After a TypeError from a cache or dict lookup, tell whether the key was the cause."""
    try:
        hash(cache_key)
    except TypeError as hash_error:
        return unhashable_key_error(name, key, hash_error)
    return None


# ---------------------------------------------------------------- load_fn results


def not_awaitable_error(name: str, returned: Any) -> TypeError:
    return TypeError(
        f"DataLoader {name!r}: load_fn returned {type(returned).__name__}, not an awaitable; "
        "load_fn must be an async function (declare it with 'async def')"
    )


def is_awaitable(value: Any) -> bool:
    return inspect.isawaitable(value)


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


def task_name(name: str, counter: int) -> str:
    return f"dloader:{name}:batch-{counter}"


def shutdown_error_group(name: str, errors: list[Exception]) -> ExceptionGroup[Exception] | None:
    if not errors:
        return None
    return ExceptionGroup(f"DataLoader {name!r}: load_fn raised while being cancelled by shutdown()", errors)
