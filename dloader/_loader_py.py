"""The pure-Python DataLoader: the readable reference and the fallback.

``_loader_c.pyx`` is its compiled twin; keep the two structurally parallel
(same classes, method order and section comments), with shared slow paths in ``_common``.
"""

from __future__ import annotations

import weakref
from asyncio import AbstractEventLoop, CancelledError, Future, InvalidStateError, Task, wait
from asyncio import current_task as _current_task
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, MutableMapping
from contextvars import Context
from contextvars import copy_context as _copy_context
from threading import get_ident as _get_ident
from types import CoroutineType, TracebackType
from typing import Any, Generic, Literal, NoReturn, TypeVar, overload

from . import _common
from ._asyncio_private import NATIVE_EAGER_START, future_factory, ready_queue, thread_id_of
from ._asyncio_private import get_running_loop as _get_running_loop
from ._common import DEFAULT, MAX_DISPATCH_WAITS, LoaderStats, LoadFunction
from ._common import yield_once as _yield_once
from .value_cache import MISS

__all__ = ("DataLoader",)

_K = TypeVar("_K")
_V = TypeVar("_V")

_NOTHING: Any = object()


class _Collector:
    """One load_many() call: its future and the result list it fills in place.

    A waiter of a key is either a Future (from load) or a ``(collector, index)``
    tuple (from load_many), so load_many needs no future per key.
    """

    __slots__ = ("future", "results", "remaining", "return_exceptions")

    def __init__(self, future: Future[list[Any]], results: list[Any], return_exceptions: bool) -> None:
        self.future = future
        self.results = results
        self.remaining = len(results)
        self.return_exceptions = return_exceptions

    def deliver(self, index: int, value: Any) -> None:
        results = self.results
        results[index] = value
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(results)

    def fail(self, index: int, error: BaseException) -> None:
        if self.return_exceptions:
            self.deliver(index, error)
        elif not self.future.done():
            self.future.set_exception(error)


# A key's waiters: the first one is stored bare (in the queue and in-flight dicts);
# any others wait in DataLoader._more_waiters under that first waiter. Most keys
# have one waiter, so most keys cost no list.


def _waiter_future(waiter: Any) -> Future[Any]:
    return waiter[0].future if type(waiter) is tuple else waiter  # type: ignore[no-any-return]


def _waiter_done(waiter: Any) -> bool:
    return waiter[0].future.done() if type(waiter) is tuple else waiter.done()  # type: ignore[no-any-return]


def _deliver(waiter: Any, value: Any) -> None:
    if type(waiter) is tuple:
        waiter[0].deliver(waiter[1], value)
    else:
        try:
            waiter.set_result(value)
        except InvalidStateError:  # that caller cancelled: nobody else is affected
            pass


def _fail(waiter: Any, error: BaseException) -> None:
    if type(waiter) is tuple:
        waiter[0].fail(waiter[1], error)
    elif not waiter.done():
        waiter.set_exception(error)


def _cancel(waiter: Any) -> None:
    if type(waiter) is tuple:
        waiter[0].future.cancel()
    else:
        waiter.cancel()


def _start_task(
    loop: AbstractEventLoop, coroutine: Any, name: str, context: Context | None, on_done: Callable[[Task[Any]], None]
) -> tuple[Task[Any], bool]:
    """Start one of the loader's tasks so that it can never end before its first step unseen.

    Without an application task factory, on 3.12+, the first step runs now (eager start):
    the coroutine is inside its own try block before anybody can cancel the task. Otherwise
    a done callback guards the window before the first step (the owner cleans up after a
    task cancelled then); the second value says so, and the first step removes it again.
    The task runs in ``context``: the context of the call that queued its loader's first key.
    """
    if (
        NATIVE_EAGER_START
        and loop.get_task_factory() is None
        and loop.is_running()
        and _current_task(loop) is None  # never nested in another task's step
    ):
        return Task(coroutine, loop=loop, name=name, context=context, eager_start=True), False  # type: ignore[call-arg]
    task = loop.create_task(coroutine, name=name, context=context)
    task.add_done_callback(on_done)
    return task, True


class _Batch:
    """One load_fn call's keys, waiters and task; owned by its loader from dispatch to the end."""

    __slots__ = (
        "loader", "keys", "cache_keys", "entries", "tokens", "context",
        "task", "guarded", "finished", "live", "watched", "running",
    )  # fmt: skip

    def __init__(
        self, loader: DataLoader[Any, Any], keys: list[Any], cache_keys: list[Any], entries: list[Any], tokens: Any
    ) -> None:
        self.loader = loader
        self.keys = keys
        self.cache_keys = cache_keys
        self.entries = entries
        self.tokens = tokens
        # The context of the call that queued the loader's first key: load_fn runs in a copy
        # of it (each task its own, as create_task gives) when the batch gets its own task.
        self.context: Context | None = loader._dispatch_context
        self.task: Task[Any] | None = None
        self.guarded = False  # a done callback on the task guards the window before its first step
        self.finished = False
        # While load_fn is suspended: how many of the batch's waiters still want a value.
        self.live = 0
        self.watched = False
        self.running = False  # counted against max_concurrent_batches

    def task_done(self, task: Task[Any]) -> None:
        """Done callback, where a task may end before its first step (then nothing ran)."""
        if not self.finished:
            self.loader._abandon_batch(self)

    def waiter_done(self, future: Future[Any]) -> None:
        """Done callback of a watched batch's waiters: cancel load_fn when the last one cancelled."""
        # Only cancellation counts: a load_many that failed early still loads and caches its other keys.
        if not self.finished and future.cancelled():
            self.live -= 1
            if self.live == 0:
                self.loader._unwanted(self)


class _Dispatcher:
    """Dispatches every loader of one event loop, in the order their first keys were queued.

    One per loop (and per twin): batches of different loaders start in request order,
    and one dispatch serves every loader that queued keys in the same iterations.
    """

    __slots__ = ("loop", "ready", "pending", "handle", "waits", "guarded", "__weakref__")

    def __init__(self, loop: AbstractEventLoop) -> None:
        self.loop = loop
        self.ready = ready_queue(loop)
        # Loaders with queued keys, in the order of their first key; a loader is here
        # exactly while its queue is not empty.
        self.pending: list[DataLoader[Any, Any]] = []
        # The scheduled dispatch: a task (idle asyncio loop, uvloop), a timer (busy asyncio loop) or None.
        self.handle: Any = None
        self.waits = 0
        self.guarded = False

    def add(self, loader: DataLoader[Any, Any]) -> None:
        """``loader`` queued its first key; schedule a dispatch if none is."""
        loader._dispatch_seen = 1
        if self.handle is not None:
            # Joining a dispatch scheduled earlier: the loader's first look is one iteration
            # later, and its batches start in a copy of this call's context (the dispatch
            # runs in the context of the call that scheduled it).
            loader._dispatch_waits = -1
            loader._dispatch_context = _copy_context()
            self.pending.append(loader)
            return
        loader._dispatch_waits = 0
        loader._dispatch_context = None  # the dispatch's own context: a copy of this call's
        self.pending.append(loader)
        self.waits = 0
        loop = self.loop
        ready = self.ready
        try:
            if ready is None or not ready:
                # An idle asyncio loop, or uvloop (which hides its ready queue): a task looks
                # one iteration on, then dispatches, and runs a lone batch itself, as 0.1.1 does.
                loader._batch_counter += 1
                name = f"dloader:{loader._name}:batch-{loader._batch_counter}"  # README: Semantics
                # Not started eagerly: its first step would only yield (the look is one
                # iteration on). A done callback guards the window before that step instead.
                task = loop.create_task(self._dispatch_task(loader), name=name)
                task.add_done_callback(self._task_done)
                self.handle = task
                self.guarded = True
            else:
                # A busy asyncio loop: a 0-delay timer fires after this iteration's callbacks.
                self.handle = loop.call_at(loop.time(), self._check)
        except BaseException:  # a task factory failed: nothing is scheduled for this key
            self.pending.remove(loader)
            loader._unqueue()
            raise

    def remove(self, loader: DataLoader[Any, Any]) -> Task[Any] | None:
        """``loader`` has nothing queued any more; returns a dispatch task this cancelled."""
        try:
            self.pending.remove(loader)
        except ValueError:
            return None
        handle = self.handle
        if self.pending or handle is None:
            return None
        self.handle = None
        handle.cancel()
        return handle if isinstance(handle, Task) else None

    def keys_arriving(self) -> bool:
        """One look: whether a pending loader got keys since its last look and may wait for more.

        Each loader keeps its own count from its first key (as if it dispatched alone), so
        one that started later is not cut short; the dispatch waits for all of them, so that
        their batches still start in the order of their first keys, and at most twice the
        per-loader bound, so that a stream of new loaders cannot starve the first.
        """
        arriving = False
        for loader in self.pending:
            if loader._dispatch_waits < 0:  # joined a dispatch already scheduled: its own first look is next
                loader._dispatch_waits = 0
                arriving = True
                continue
            queued = len(loader._queue)
            if queued > loader._dispatch_seen:
                loader._dispatch_seen = queued
                if loader._dispatch_waits < MAX_DISPATCH_WAITS:
                    loader._dispatch_waits += 1
                    arriving = True
        if arriving and self.waits < 2 * MAX_DISPATCH_WAITS:
            self.waits += 1
            return True
        return False

    async def _dispatch_task(self, owner: DataLoader[Any, Any]) -> None:
        """The dispatch on an idle asyncio loop or on uvloop, in a task named after ``owner``."""
        loop = self.loop
        # At its first step the scheduled dispatch is this task, unless an application's
        # eager task factory runs that step inside create_task, before add() records it.
        task = self.handle
        eager = task is None
        if eager:
            task = _current_task(loop)
        if self.guarded:  # past the first step: the guard would only add a callback to the loop
            self.guarded = False
            task.remove_done_callback(self._task_done)
        try:
            if eager:  # an application's eager task factory started it inside load()
                await _yield_once()  # look one iteration on, as a task's first step does
            ready = self.ready
            if ready is None:
                # uvloop: a yielding task resumes after every callback queued before it, so
                # each look sees a whole iteration; look once more while keys keep arriving.
                await _yield_once()
                while self.keys_arriving():
                    await _yield_once()
            elif ready:  # the asyncio loop got busy meanwhile: watch whole iterations instead
                self.handle = loop.call_at(loop.time(), self._check)
                return
        except BaseException:  # cancelled from outside before dispatching
            if self.handle is task:
                self._abandon()
            raise
        batches = self._take()
        if len(batches) == 1 and batches[0].loader is owner:
            batch = batches[0]  # a lone batch runs in this task, named after its loader
            batch.task = task
            await batch.loader._run_batch(batch)
        elif batches:
            self._start(batches, 0)

    def _task_done(self, task: Task[Any]) -> None:
        if self.handle is task:  # ended before dispatching: cancelled before its first step
            self._abandon()

    def _abandon(self) -> None:
        """The dispatch task was cancelled from outside: its loaders' queued callers are cancelled."""
        pending = self.pending
        self.pending = []
        self.handle = None
        for loader in pending:
            loader._cancel_queue()

    def _check(self) -> None:
        """On a busy asyncio loop, after each iteration: wait one more while keys keep arriving."""
        if self.keys_arriving() and self.ready:  # an idle loop can bring no more keys before the next I/O
            self.handle = self.loop.call_at(self.loop.time(), self._check)
            return
        batches = self._take()
        if batches:
            self._start(batches, 0)

    def _take(self) -> list[_Batch]:
        """Every pending loader's queued keys, now in flight, as batches in first-key order."""
        pending = self.pending
        self.pending = []
        self.handle = None
        batches: list[_Batch] = []
        for loader in pending:
            loader._take_batches(batches)
        return batches

    def _start(self, batches: list[_Batch], index: int) -> None:
        """Start batches in order; after an interrupt the rest start in the next iteration."""
        count = len(batches)
        try:
            while index < count:
                batch = batches[index]
                index += 1
                batch.loader._start_batch_task(batch)
        except BaseException:
            if index < count:
                self.loop.call_soon(self._start, batches, index)
            raise


# Loop id -> its dispatcher, alive while a loader bound to that loop holds it (and so the
# loop, whose id cannot be reused meanwhile).
_dispatchers: weakref.WeakValueDictionary[int, _Dispatcher] = weakref.WeakValueDictionary()


def _dispatcher_for(loop: AbstractEventLoop) -> _Dispatcher:
    dispatcher = _dispatchers.get(id(loop))
    if dispatcher is None or dispatcher.loop is not loop:
        dispatcher = _dispatchers[id(loop)] = _Dispatcher(loop)
    return dispatcher


class DataLoader(Generic[_K, _V]):
    """Batches, de-duplicates and caches the loads of many concurrent callers.

    ``load(key)`` returns a future at once; the keys requested while the event
    loop is busy are collected and passed, in request order and each once, to a
    single call of ``load_fn``, whose results resolve every caller's future and
    (with ``cache=True``) are kept in ``cache_map``.
    """

    __slots__ = (
        "_load_fn",
        "_max_batch_size",
        "_batch_limit",
        "_cache",
        "_cache_map",
        "_cache_key_fn",
        "_name",
        "_cache_errors",
        "_max_concurrent_batches",
        "_counters",
        "_instrumentation",
        "_observed",
        "_value_cache",
        "_loop",
        "_create_future",
        "_thread_check",
        "_dispatcher",
        "_queue",
        "_queue_keys",
        "_tokens",
        "_in_flight",
        "_more_waiters",
        "_errors",
        "_watched",
        "_batches",
        "_waiting",
        "_running",
        "_batch_counter",
        "_dispatch_seen",
        "_dispatch_waits",
        "_dispatch_context",
        "_cache_tasks",
        "_closing",
        "_shutdown_errors",
        "_entered",
        "__weakref__",
    )

    def __init__(
        self,
        load_fn: LoadFunction[_K, _V],
        max_batch_size: int | None = None,
        cache: bool = True,
        loop: AbstractEventLoop | None = None,
        cache_map: MutableMapping[Any, _V] | None = None,
        *,
        cache_key_fn: Callable[[_K], Hashable] | None = None,
        name: str | None = None,
        cache_errors: bool | Callable[[_K, Exception], bool] = False,
        max_concurrent_batches: int | None = None,
        stats: bool = False,
        instrumentation: Any = DEFAULT,
        value_cache: Any = None,
    ) -> None:
        name = _common.validate_arguments(
            load_fn, max_batch_size, cache, cache_map, cache_key_fn, name, loop,
            cache_errors, max_concurrent_batches, stats,
        )  # fmt: skip
        self._load_fn = load_fn
        self._max_batch_size = max_batch_size
        self._batch_limit = _common.batch_limit(max_batch_size)
        self._cache = cache
        self._cache_map: MutableMapping[Any, _V] = {} if cache_map is None else cache_map
        self._cache_key_fn = cache_key_fn
        self._name = name
        self._cache_errors = cache_errors
        self._max_concurrent_batches = max_concurrent_batches
        self._counters = _common.Counters() if stats else None
        self._instrumentation = _common.check_instrumentation(name, instrumentation)
        self._observed = stats or self._instrumentation is not None
        self._value_cache = _common.check_value_cache(name, value_cache)
        self._loop: AbstractEventLoop | None = None
        self._create_future: Callable[[], Future[Any]] | None = None
        self._thread_check = False
        self._dispatcher: _Dispatcher | None = None
        # Queued keys (not dispatched yet), in request order: cache key -> first waiter.
        self._queue: dict[Any, Any] = {}
        # With a cache_key_fn: cache key -> the original key, for load_fn.
        self._queue_keys: dict[Any, Any] = {}
        # With instrumentation: (cache key or list of cache keys, token) of the queued calls.
        self._tokens: list[tuple[Any, Any]] = []
        # Keys whose load_fn call is running and whose result may be cached: cache key -> first waiter.
        self._in_flight: dict[Any, Any] = {}
        # A key's first waiter -> the waiters that joined it.
        self._more_waiters: dict[Any, list[Any]] = {}
        # Cached failures (primed exceptions, cache_errors): cache key -> exception.
        self._errors: dict[Any, Exception] = {}
        # First waiter -> its batch, for batches whose load_fn is suspended (watched).
        self._watched: dict[Any, _Batch] = {}
        self._batches: set[_Batch] = set()
        self._waiting: deque[_Batch] = deque()  # batches held back by max_concurrent_batches
        self._running = 0
        self._batch_counter = 0
        # The dispatch's looks at this loader's queue: its length at the last look, and how
        # many extra iterations it has waited since its first key.
        self._dispatch_seen = 0
        self._dispatch_waits = 0
        self._dispatch_context: Context | None = None
        self._cache_tasks: set[Task[Any]] = set()
        self._closing = 0
        self._shutdown_errors: list[Exception] = []
        self._entered = False
        if loop is not None:
            self._bind(loop)

    # ------------------------------------------------------------ public attributes

    @property
    def load_fn(self) -> LoadFunction[_K, _V]:
        return self._load_fn

    @load_fn.setter
    def load_fn(self, value: LoadFunction[_K, _V]) -> None:
        self._load_fn = _common.check_load_fn(self._name, value)

    @property
    def max_batch_size(self) -> int | None:
        return self._max_batch_size

    @max_batch_size.setter
    def max_batch_size(self, value: int | None) -> None:
        self._max_batch_size = _common.check_max_batch_size(self._name, value)
        self._batch_limit = _common.batch_limit(value)

    @property
    def cache(self) -> bool:
        return self._cache

    @cache.setter
    def cache(self, value: bool) -> None:
        self._cache = _common.check_bool(self._name, "cache", value)

    @property
    def cache_map(self) -> MutableMapping[Any, _V]:
        return self._cache_map

    @cache_map.setter
    def cache_map(self, value: MutableMapping[Any, _V]) -> None:
        self._cache_map = _common.check_cache_map(self._name, value)

    @property
    def cache_key_fn(self) -> Callable[[_K], Hashable] | None:
        return self._cache_key_fn

    @cache_key_fn.setter
    def cache_key_fn(self, value: Callable[[_K], Hashable] | None) -> None:
        self._cache_key_fn = _common.check_cache_key_fn(self._name, value)

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = _common.check_name(value)

    @property
    def cache_errors(self) -> bool | Callable[[_K, Exception], bool]:
        return self._cache_errors

    @cache_errors.setter
    def cache_errors(self, value: bool | Callable[[_K, Exception], bool]) -> None:
        self._cache_errors = _common.check_cache_errors(self._name, value)

    @property
    def max_concurrent_batches(self) -> int | None:
        return self._max_concurrent_batches

    @max_concurrent_batches.setter
    def max_concurrent_batches(self, value: int | None) -> None:
        self._max_concurrent_batches = _common.check_max_concurrent_batches(self._name, value)

    @property
    def stats(self) -> LoaderStats | None:
        """A snapshot of the loader's counters (``stats=True``), else None."""
        counters = self._counters
        return None if counters is None else counters.snapshot()

    @property
    def instrumentation(self) -> Any:
        return self._instrumentation

    @property
    def value_cache(self) -> Any:
        return self._value_cache

    # ------------------------------------------------------------ public API

    def load(self, key: _K) -> Future[_V]:
        """Return a future of the value for ``key``, batched with concurrent loads."""
        loop = self._loop
        if self._thread_check:
            if loop._thread_id != _get_ident():  # type: ignore[union-attr]
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        cache_key_fn = self._cache_key_fn
        cache_key = key if cache_key_fn is None else cache_key_fn(key)
        future: Future[_V]
        try:
            if self._cache:
                cache_map = self._cache_map
                if cache_key in cache_map:
                    future = self._create_future()  # type: ignore[misc]
                    future.set_result(cache_map[cache_key])
                    if self._observed:
                        self._observe(key, future, None, False, 1, 0, 0)
                    return future
                if self._errors and cache_key in self._errors:
                    future = self._create_future()  # type: ignore[misc]
                    future.set_exception(self._errors[cache_key])
                    if self._observed:
                        self._observe(key, future, None, False, 1, 0, 0)
                    return future
            future = self._create_future()  # type: ignore[misc]
            entry = self._in_flight.get(cache_key) if self._in_flight else None
            if entry is None:
                queue = self._queue
                # One dict operation both finds a queued key and queues a new one.
                entry = queue.setdefault(cache_key, future)
                queued_now = entry is future  # (a variable: `if entry is future` would narrow future to Any)
                if queued_now:
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = key
                    if len(queue) == 1:  # the first key: every bookkeeping is done, schedule
                        self._dispatcher.add(self)  # type: ignore[union-attr]
                    if self._observed:
                        self._observe(key, future, cache_key, False, 0, 0, 1)
                    return future
                queued = True
            else:
                queued = False
        except TypeError as error:
            raise self._key_error(cache_key, key, error) from None
        # The key is queued or in flight already: join its first waiter.
        self._join(entry, future)
        if self._observed:
            self._observe(key, future, cache_key if queued else None, False, 0, 1, 0)
        return future

    @overload
    def load_many(self, keys: Iterable[_K], *, return_exceptions: Literal[False] = False) -> Future[list[_V]]: ...

    @overload
    def load_many(self, keys: Iterable[_K], *, return_exceptions: bool) -> Future[list[_V | BaseException]]: ...

    def load_many(self, keys: Iterable[_K], *, return_exceptions: bool = False) -> Future[list[Any]]:
        """Return one future of the values for ``keys``, in order, duplicates kept.

        It fails with the first key that fails, unless ``return_exceptions`` is
        true: then failed positions hold the exception instead.
        """
        loop = self._loop
        if self._thread_check:
            if loop._thread_id != _get_ident():  # type: ignore[union-attr]
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        if isinstance(keys, (str, bytes, bytearray)):
            raise _common.keys_argument_error(self._name, keys)
        keys = list(keys)
        cache_key_fn = self._cache_key_fn
        cache_keys = keys if cache_key_fn is None else [cache_key_fn(key) for key in keys]
        future: Future[list[Any]] = self._create_future()  # type: ignore[misc]
        results: list[Any] = [None] * len(keys)
        collector = _Collector(future, results, return_exceptions)
        # First pass: answer cache hits and check every key, so a bad key leaves nothing queued.
        missing: list[int] = []
        failed: list[int] = []
        index = 0
        try:
            if self._cache:
                cache_map = self._cache_map
                errors = self._errors
                for index, cache_key in enumerate(cache_keys):
                    if cache_key in cache_map:
                        results[index] = cache_map[cache_key]
                        collector.remaining -= 1
                    elif errors and cache_key in errors:
                        failed.append(index)
                    else:
                        missing.append(index)
            else:
                for index in range(len(cache_keys)):
                    hash(cache_keys[index])
                missing = list(range(len(keys)))
        except TypeError as error:
            raise self._key_error(cache_keys[index], keys[index], error) from None
        hits = len(keys) - len(missing)
        for index in failed:
            collector.fail(index, self._errors[cache_keys[index]])
        queue = self._queue
        in_flight = self._in_flight
        joined = 0
        schedule = not queue  # the first keys queued: this call schedules the dispatch
        for index in missing:
            cache_key = cache_keys[index]
            waiter = (collector, index)
            entry = in_flight.get(cache_key) if in_flight else None
            if entry is None:
                entry = queue.setdefault(cache_key, waiter)
                if entry is waiter:
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = keys[index]
                    continue
            joined += 1
            self._join(entry, waiter)
        if schedule and queue:  # every key is queued: now the dispatch may be scheduled
            self._dispatcher.add(self)  # type: ignore[union-attr]
        if collector.remaining == 0 and not future.done():
            future.set_result(results)
        if self._observed:
            # The cache keys this call queued or joined while queued (the others joined running fetches).
            queued_keys = (
                [cache_keys[index] for index in missing if cache_keys[index] in queue]
                if self._instrumentation is not None
                else None
            )
            self._observe(keys, future, queued_keys, True, hits, joined, len(missing) - joined)
        return future

    def clear(self, key: _K) -> None:
        """Forget the cached value of ``key``; a running fetch of it is detached."""
        cache_key = self._cache_key(key)
        self._forget(cache_key)
        if self._value_cache is not None:
            self._schedule_cache_call("delete_many", [cache_key])

    def clear_many(self, keys: Iterable[_K]) -> None:
        """Forget the cached values of ``keys``; running fetches of them are detached."""
        cache_keys = [self._cache_key(key) for key in keys]
        for cache_key in cache_keys:
            self._forget(cache_key)
        if self._value_cache is not None and cache_keys:
            self._schedule_cache_call("delete_many", cache_keys)

    def clear_all(self) -> None:
        """Empty the cache; every running fetch is detached."""
        self._cache_map.clear()
        self._errors.clear()
        self._in_flight.clear()
        if self._value_cache is not None:
            self._schedule_cache_call("clear", None)

    async def invalidate(self, keys: Iterable[_K]) -> None:
        """Forget ``keys`` here and wait until the value_cache has deleted them too."""
        cache_keys = [self._cache_key(key) for key in keys]
        for cache_key in cache_keys:
            self._forget(cache_key)
        if self._value_cache is not None and cache_keys:
            await self._value_cache.delete_many(cache_keys)

    def prime(self, key: _K, value: _V, *, overwrite: bool = True) -> None:
        """Store ``value`` for ``key`` (overwriting) and answer the loads of it still queued.

        A running fetch of ``key`` is detached. An ``Exception`` instance as ``value``
        fails the loads of ``key`` with it until it is cleared. With ``overwrite=False``
        nothing changes for a key that has a cached value or failure or a running fetch
        (a queued key is still answered), as strawberry's and aiodataloader's prime.
        """
        cache_key = self._cache_key(key)
        in_flight = self._in_flight
        if not overwrite and (cache_key in self._cache_map or cache_key in self._errors or cache_key in in_flight):
            return
        if isinstance(value, Exception):
            self._cache_map.pop(cache_key, None)
            self._errors[cache_key] = value
        else:
            self._cache_map[cache_key] = value
            if self._errors:
                self._errors.pop(cache_key, None)
        if in_flight:
            in_flight.pop(cache_key, None)
        queue = self._queue
        if queue:
            entry = queue.pop(cache_key, _NOTHING)
            if entry is not _NOTHING:
                self._queue_keys.pop(cache_key, None)
                if not queue:
                    self._dispatcher.remove(self)  # type: ignore[union-attr]
                if isinstance(value, Exception):
                    self._fail_entry(entry, value)
                else:
                    self._deliver_entry(entry, value)

    def prime_many(self, data: Mapping[_K, _V], *, overwrite: bool = True) -> None:
        """Store every key-value pair of ``data``, as ``prime`` does."""
        for key, value in data.items():
            self.prime(key, value, overwrite=overwrite)

    async def shutdown(self) -> ExceptionGroup[Exception] | None:
        """Cancel the scheduled dispatch, running batches and every pending future.

        Waits for the batches to finish (and, with a value_cache, for its pending writes,
        at most its timeout) and returns an ExceptionGroup of the exceptions (other than
        cancellation) that load_fn raised while being cancelled, or None. Idempotent; the
        loader stays usable. Cancelling the task that awaits it cancels the wait.
        """
        tasks: list[Task[Any]] = []
        dispatcher = self._dispatcher
        if dispatcher is not None:
            cancelled_dispatch = dispatcher.remove(self)
            if cancelled_dispatch is not None:
                tasks.append(cancelled_dispatch)
        self._cancel_queue()
        if not self._closing:
            self._shutdown_errors = []
        errors = self._shutdown_errors
        self._closing += 1
        try:
            while self._waiting:
                batch = self._waiting.popleft()
                self._cancel_batch(batch)
                self._batch_ended(batch)
            for batch in list(self._batches):
                # Their tasks are cancelled below; the waiters are cancelled now, so no caller
                # waits on a load_fn that ignores cancellation.
                for entry in batch.entries:
                    _cancel(entry)
                    for waiter in self._more_waiters.get(entry, ()):
                        _cancel(waiter)
                task = batch.task
                if task is not None:
                    task.cancel()
                    tasks.append(task)
            if tasks:
                await wait(tasks)
                _common.retrieve(tasks)
            cache_tasks = self._cache_tasks
            if cache_tasks:
                timeout = getattr(self._value_cache, "timeout", None)
                pending = list(cache_tasks)
                _done, still = await wait(pending, timeout=timeout)
                for task in still:
                    task.cancel()
                if still:
                    await wait(still)
                _common.retrieve(pending)
                cache_tasks.difference_update(pending)  # their discard callbacks may not have run yet
        finally:
            self._closing -= 1
        return _common.shutdown_error_group(self._name, errors)

    async def __aenter__(self) -> DataLoader[_K, _V]:
        if self._entered:
            raise _common.entered_twice_error(self._name)
        self._entered = True
        if self._loop is None:
            self._loop_for_call()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._entered = False
        await self.shutdown()

    def __repr__(self) -> str:
        return _common.loader_repr(
            type(self).__name__, self._name, len(self._cache_map), len(self._queue), len(self._in_flight)
        )

    def __copy__(self) -> NoReturn:
        raise _common.copy_error(type(self).__name__)

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise _common.copy_error(type(self).__name__)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise _common.copy_error(type(self).__name__)

    def _debug_state(self) -> dict[str, Any]:
        """Counts of the loader's internal state, for tests: all zero when it is idle."""
        dispatcher = self._dispatcher
        return {
            "queued": len(self._queue),
            "in_flight": len(self._in_flight),
            "batches": len(self._batches),
            "joined": len(self._more_waiters),
            "dispatch_scheduled": dispatcher is not None and self in dispatcher.pending,
            "pending_writes": len(self._cache_tasks),
        }

    # ------------------------------------------------------------ loop binding

    def _bind(self, loop: AbstractEventLoop) -> None:
        self._loop = loop
        self._create_future = future_factory(loop)
        self._thread_check = thread_id_of(loop)
        self._dispatcher = _dispatcher_for(loop)

    def _loop_for_call(self) -> AbstractEventLoop:
        """The slow path of load(): bind, rebind, or explain why the loop is wrong."""
        running = _get_running_loop()
        loop = self._loop
        if running is None:
            if loop is None:
                raise _common.no_loop_error(self._name)
            if loop.is_closed():
                raise _common.closed_loop_error(self._name)
            if loop.is_running():  # running, but not in this thread: never touch it from here
                raise _common.other_thread_error(self._name)
            return loop
        if loop is not None and running is not loop:
            busy = len(self._queue) + len(self._in_flight) + len(self._batches) + len(self._cache_tasks)
            if busy:
                raise _common.other_loop_error(self._name, busy)
        self._bind(running)
        return running

    # ------------------------------------------------------------ keys

    def _cache_key(self, key: _K) -> Hashable:
        cache_key_fn = self._cache_key_fn
        return key if cache_key_fn is None else cache_key_fn(key)

    def _key_error(self, cache_key: Any, key: Any, error: TypeError) -> TypeError:
        found = _common.check_key_hashable(self._name, cache_key, key, error, self._cache_key_fn is not None)
        return found or error

    def _join(self, entry: Any, waiter: Any) -> None:
        more = self._more_waiters.get(entry)
        if more is None:
            self._more_waiters[entry] = [waiter]
        else:
            more.append(waiter)
        if self._watched:
            batch = self._watched.get(entry)
            if batch is not None:  # its load_fn is suspended: the batch is wanted by one more
                batch.live += 1
                _waiter_future(waiter).add_done_callback(batch.waiter_done)

    def _forget(self, cache_key: Any) -> None:
        try:
            del self._cache_map[cache_key]
        except KeyError:
            pass
        if self._errors:
            self._errors.pop(cache_key, None)
        self._in_flight.pop(cache_key, None)

    def _observe(
        self, key: Any, future: Future[Any], queued: Any, many: bool, hits: int, joined: int, fetched: int
    ) -> None:
        """Statistics and instrumentation of one load()/load_many() call (off: never called)."""
        counters = self._counters
        if counters is not None:
            counters.loads += hits + joined + fetched
            counters.cache_hits += hits
            counters.joined += joined
        instrumentation = self._instrumentation
        if instrumentation is not None:
            token = instrumentation.on_load(self, key, future, many)
            # queued: the cache key that call queued or joined while queued (any value, even
            # a falsy one), a list of them (load_many), or None.
            if token is not None and queued is not None and (type(queued) is not list or queued):
                self._tokens.append((queued, token))

    # ------------------------------------------------------------ dispatch

    def _unqueue(self) -> None:
        """Scheduling the dispatch failed (a task factory raised): the queue, which held only
        the keys of the failing call, is emptied (nothing was handed out for them)."""
        queue = self._queue
        self._queue = {}
        self._queue_keys = {}
        self._tokens = []
        more_waiters = self._more_waiters
        for entry in queue.values():
            more_waiters.pop(entry, None)

    def _cancel_queue(self) -> None:
        queue = self._queue
        self._queue = {}
        self._queue_keys = {}
        self._tokens = []
        for entry in queue.values():
            self._cancel_entry(entry)

    def _take_batches(self, out: list[_Batch]) -> None:
        """Move every queued key with a live waiter in flight, as batches of at most max_batch_size."""
        queue = self._queue
        self._queue = {}
        cache_keys = list(queue)
        entries = list(queue.values())
        for entry in entries:
            # Cheap test on the first waiter; a done one may still have live joiners.
            if (entry[0].future.done() if type(entry) is tuple else entry.done()) and not self._is_live(entry):
                cache_keys, entries = self._drop_dead_keys(queue)
                break
        if self._cache_key_fn is None:
            keys = cache_keys
        else:
            queue_keys = self._queue_keys
            self._queue_keys = {}
            keys = [queue_keys[cache_key] for cache_key in cache_keys]
        tokens = self._tokens
        if tokens:
            self._tokens = []
        count = len(cache_keys)
        if not count:
            self._dispatch_context = None
            return
        self._in_flight.update(zip(cache_keys, entries))
        size = self._batch_limit
        if count <= size:
            batch_tokens = [token for _, token in tokens] if tokens else []
            self._add_batch(out, _Batch(self, keys, cache_keys, entries, batch_tokens))
        else:
            for start in range(0, count, size):
                stop = start + size
                part = cache_keys[start:stop]
                self._add_batch(
                    out, _Batch(self, keys[start:stop], part, entries[start:stop], _common.tokens_for(tokens, part))
                )
        self._dispatch_context = None

    def _add_batch(self, out: list[_Batch], batch: _Batch) -> None:
        self._batches.add(batch)
        limit = self._max_concurrent_batches
        if limit is None:
            out.append(batch)
        elif self._running < limit:
            self._running += 1
            batch.running = True
            out.append(batch)
        else:
            if batch.context is None:  # it starts later, from another task: keep the dispatch's context
                batch.context = _copy_context()
            self._waiting.append(batch)

    def _is_live(self, entry: Any) -> bool:
        """Whether any waiter of a key still wants its value."""
        if not _waiter_done(entry):
            return True
        return not all(map(_waiter_done, self._more_waiters.get(entry, ())))

    def _drop_dead_keys(self, queue: dict[Any, Any]) -> tuple[list[Any], list[Any]]:
        cache_keys = []
        entries = []
        for cache_key, entry in queue.items():
            if self._is_live(entry):
                cache_keys.append(cache_key)
                entries.append(entry)
            else:
                self._more_waiters.pop(entry, None)
        return cache_keys, entries

    def _start_batch_task(self, batch: _Batch) -> None:
        self._batch_counter += 1
        name = f"dloader:{self._name}:batch-{self._batch_counter}"
        coroutine = self._run_batch(batch)
        try:
            batch.task, batch.guarded = _start_task(
                self._loop,  # type: ignore[arg-type]
                coroutine,
                name,
                None if batch.context is None else batch.context.copy(),
                batch.task_done,
            )
        except BaseException as error:
            if not batch.finished:  # the task never ran (a task factory failed)
                coroutine.close()
                self._fail_batch(
                    batch, error if isinstance(error, Exception) else _common.interrupted_error(self._name, error)
                )
                self._batch_ended(batch)
            if not isinstance(error, Exception):
                raise

    # ------------------------------------------------------------ batches

    async def _run_batch(self, batch: _Batch) -> None:
        """Call load_fn once and answer every waiter of the batch, whatever happens."""
        scope = None
        error: BaseException | None = None
        failures = 0
        counters = self._counters
        if batch.guarded:  # past the first step: the guard would only add a callback to the loop
            batch.guarded = False
            batch.task.remove_done_callback(batch.task_done)  # type: ignore[union-attr]
        try:
            try:
                if self._value_cache is not None and self._cache and await self._read_value_cache(batch):
                    return  # every key was in the value cache
                if counters is not None:
                    counters.batches += 1
                    counters.batch_keys += len(batch.keys)
                if self._instrumentation is not None:
                    scope = self._instrumentation.on_batch(self, list(batch.keys), batch.tokens)
                    if scope is not None:
                        scope.enter()
                # A new list: a load_fn that sorts or mutates its argument cannot misroute results.
                awaitable = self._load_fn(batch.keys[:])
                iterator = (
                    awaitable if type(awaitable) is CoroutineType else _common.await_iterator(self._name, awaitable)
                )
                # load_fn's first step by hand: one that suspends gets its waiters watched.
                try:
                    yielded = iterator.send(None)
                except StopIteration as stop:
                    results = stop.value
                else:
                    self._watch(batch)
                    results = await _common.resume(iterator, yielded)
            except CancelledError as cancelled:
                error = cancelled
                self._cancel_batch(batch)
                raise
            except GeneratorExit as exit_:
                error = exit_
                if batch.task is not None and _current_task(self._loop) is not batch.task:  # garbage collected
                    self._cancel_batch(batch)
                    raise
                self._fail_batch(batch, _common.interrupted_error(self._name, exit_))
                return
            except Exception as exception:
                error = exception
                self._fail_batch(batch, exception)
                if counters is not None:
                    counters.batch_failures += 1
                if self._closing:
                    self._shutdown_errors.append(exception)
                return
            except BaseException as interrupt:  # KeyboardInterrupt, SystemExit, others: fail the waiters
                error = interrupt
                self._fail_batch(batch, _common.interrupted_error(self._name, interrupt))
                if _common.propagates(interrupt):
                    # It leaves the loop as asyncio propagates it; the task keeps it too, where
                    # nobody would retrieve it ("Task exception was never retrieved").
                    task = _current_task(self._loop)
                    if task is not None:
                        task.add_done_callback(_common.retrieve_exception)
                    raise
                return
            try:
                writes: list[tuple[Any, Any]] | None = [] if self._value_cache is not None and self._cache else None
                failures = self._resolve(batch.keys, batch.cache_keys, batch.entries, results, writes)
                if writes:
                    self._schedule_cache_call("set_many", writes)
            except Exception as exception:  # a bad result shape: raised before any waiter is answered
                error = exception
                self._fail_batch(batch, exception)
                if counters is not None:
                    counters.batch_failures += 1
        finally:
            self._batch_ended(batch)
            if scope is not None:
                self._exit_scope(scope, error, failures)

    def _exit_scope(self, scope: Any, error: BaseException | None, failures: int) -> None:
        try:
            scope.exit(error, failures)
        except Exception as exception:
            _common.log_cache_failure(self._name, "instrumentation.exit", exception)

    def _resolve(
        self,
        keys: list[Any],
        cache_keys: list[Any],
        entries: list[Any],
        results: Any,
        writes: list[tuple[Any, Any]] | None,
    ) -> int:
        """Answer waiters with load_fn's (or the value cache's) results; return the number of failed keys.

        A bad result shape raises before any waiter is answered. Cached values are also
        appended to ``writes`` (for the value cache) when it is a list.
        """
        if type(results) is not list and type(results) is not tuple:
            results = _common.results_as_list(
                self._name, keys, keys if self._cache_key_fn is None else cache_keys, results
            )
        elif len(results) != len(cache_keys):
            raise _common.wrong_length_error(self._name, len(cache_keys), len(results))
        in_flight = self._in_flight
        more_waiters = self._more_waiters
        cache_map = self._cache_map if self._cache else None
        failures = 0
        for key, cache_key, entry, value in zip(keys, cache_keys, entries, results):
            attached = in_flight.pop(cache_key, None)
            if attached is not entry:
                if attached is not None:  # a newer fetch of this key: not ours to touch
                    in_flight[cache_key] = attached
                attached = None
            if isinstance(value, Exception):
                failures += 1
                if attached is not None and cache_map is not None and self._cache_errors is not False:
                    self._cache_error(key, cache_key, value)
                self._fail_entry(entry, value)
                continue
            if attached is not None and cache_map is not None:
                try:
                    cache_map[cache_key] = value
                except Exception as error:  # a custom cache_map refused it: fail this key only
                    self._fail_entry(entry, error)
                    continue
                if writes is not None:
                    writes.append((cache_key, value))
            # _deliver(entry, value), inlined: one call less per key.
            if type(entry) is tuple:
                entry[0].deliver(entry[1], value)
            else:
                try:
                    entry.set_result(value)
                except InvalidStateError:  # that caller cancelled: nobody else is affected
                    pass
            if more_waiters:
                more = more_waiters.pop(entry, None)
                if more is not None:
                    for waiter in more:
                        _deliver(waiter, value)
        if failures and self._counters is not None:
            self._counters.key_failures += failures
        return failures

    def _cache_error(self, key: Any, cache_key: Any, error: Exception) -> None:
        cache_errors = self._cache_errors
        if cache_errors is True or (cache_errors is not False and cache_errors(key, error)):
            self._errors[cache_key] = error

    def _watch(self, batch: _Batch) -> None:
        """load_fn suspended: watch the waiters, so that a load_fn nobody waits for is cancelled."""
        callback = batch.waiter_done
        more_waiters = self._more_waiters
        watched = self._watched
        live = 0
        for entry in batch.entries:
            watched[entry] = batch
            future = _waiter_future(entry)
            if not future.done():
                live += 1
                future.add_done_callback(callback)
            for waiter in more_waiters.get(entry, ()):
                future = _waiter_future(waiter)
                if not future.done():
                    live += 1
                    future.add_done_callback(callback)
        batch.live = live
        batch.watched = True
        if live == 0:
            self._unwanted(batch)

    def _unwanted(self, batch: _Batch) -> None:
        """Every waiter of a running batch is gone: its keys are free again, load_fn is cancelled."""
        self._detach(batch.cache_keys, batch.entries)
        task = batch.task
        if task is not None and not task.done():
            task.cancel()

    def _batch_ended(self, batch: _Batch) -> None:
        batch.finished = True
        self._batches.discard(batch)
        # Callbacks still queued for the batch (a watched waiter's, a task's) keep it alive
        # for an iteration or so: they must not keep the loader alive too.
        batch.loader = None  # type: ignore[assignment]
        if batch.watched:
            watched = self._watched
            for entry in batch.entries:
                if watched.get(entry) is batch:
                    del watched[entry]
        if batch.running:
            batch.running = False
            self._running -= 1
            self._start_waiting()

    def _start_waiting(self) -> None:
        """max_concurrent_batches: start held-back batches, in order, while there is room."""
        limit = self._max_concurrent_batches
        waiting = self._waiting
        while waiting and (limit is None or self._running < limit):
            batch = waiting.popleft()
            if not any(map(self._is_live, batch.entries)):
                self._cancel_batch(batch)
                batch.finished = True
                self._batches.discard(batch)
                continue
            self._running += 1
            batch.running = True
            self._start_batch_task(batch)

    def _abandon_batch(self, batch: _Batch) -> None:
        """A batch task ended before running a step (cancelled from outside): cancel its waiters."""
        self._cancel_batch(batch)
        self._batch_ended(batch)

    def _fail_batch(self, batch: _Batch, error: BaseException) -> None:
        self._detach(batch.cache_keys, batch.entries)
        for entry in batch.entries:
            self._fail_entry(entry, error)

    def _cancel_batch(self, batch: _Batch) -> None:
        self._detach(batch.cache_keys, batch.entries)
        for entry in batch.entries:
            self._cancel_entry(entry)

    def _deliver_entry(self, entry: Any, value: Any) -> None:
        _deliver(entry, value)
        for waiter in self._more_waiters.pop(entry, ()):
            _deliver(waiter, value)

    def _fail_entry(self, entry: Any, error: BaseException) -> None:
        if isinstance(error, StopIteration):
            error = _common.settable_error(self._name, error)
        _fail(entry, error)
        for waiter in self._more_waiters.pop(entry, ()):
            _fail(waiter, error)

    def _cancel_entry(self, entry: Any) -> None:
        _cancel(entry)
        for waiter in self._more_waiters.pop(entry, ()):
            _cancel(waiter)

    def _detach(self, cache_keys: list[Any], entries: list[Any]) -> None:
        in_flight = self._in_flight
        for cache_key, entry in zip(cache_keys, entries):
            if in_flight.get(cache_key) is entry:
                del in_flight[cache_key]

    # ------------------------------------------------------------ value cache

    async def _read_value_cache(self, batch: _Batch) -> bool:
        """Answer the batch's keys found in the value cache; only misses stay. True when none is left."""
        cache_keys = batch.cache_keys
        try:
            answer = await self._value_cache.get_many(list(cache_keys))
            if len(answer) != len(cache_keys):
                raise _common.bad_cache_answer(self._name, len(cache_keys), answer)
        except Exception as error:  # a cache failure never fails a load: load_fn answers instead
            if self._counters is not None:
                self._counters.value_cache_errors += 1
            _common.log_cache_failure(self._name, "get_many", error)
            return False
        hit_keys: list[Any] = []
        hit_cache_keys: list[Any] = []
        hit_entries: list[Any] = []
        hit_values: list[Any] = []
        miss_keys: list[Any] = []
        miss_cache_keys: list[Any] = []
        miss_entries: list[Any] = []
        for key, cache_key, entry, value in zip(batch.keys, cache_keys, batch.entries, answer):
            if value is MISS:
                miss_keys.append(key)
                miss_cache_keys.append(cache_key)
                miss_entries.append(entry)
            else:
                hit_keys.append(key)
                hit_cache_keys.append(cache_key)
                hit_entries.append(entry)
                hit_values.append(value)
        if hit_entries:
            if self._counters is not None:
                self._counters.value_cache_hits += len(hit_entries)
            self._resolve(hit_keys, hit_cache_keys, hit_entries, hit_values, None)
        batch.keys = miss_keys
        batch.cache_keys = miss_cache_keys
        batch.entries = miss_entries
        return not miss_entries

    def _schedule_cache_call(self, operation: str, argument: Any) -> None:
        """Run a value_cache write or delete in a task the loader tracks (shutdown waits for it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        task = loop.create_task(self._cache_call(operation, argument), name=_common.write_task_name(self._name))
        if not task.done():  # (an eager task factory may have run it to its end already)
            self._cache_tasks.add(task)
            task.add_done_callback(self._cache_tasks.discard)

    async def _cache_call(self, operation: str, argument: Any) -> None:
        try:
            method = getattr(self._value_cache, operation)
            await (method() if argument is None else method(argument))
        except Exception as error:
            if self._counters is not None:
                self._counters.value_cache_errors += 1
            _common.log_cache_failure(self._name, operation, error)
