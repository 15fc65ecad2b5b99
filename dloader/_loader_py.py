"""The pure-Python DataLoader: the readable reference and the fallback.

``_loader_c.pyx`` is its compiled twin; keep the two structurally parallel
(same method order and section comments), with shared slow paths in ``_common``.
"""

from __future__ import annotations

from asyncio import AbstractEventLoop, CancelledError, Future, InvalidStateError, Task
from asyncio import current_task as _current_task
from asyncio.events import _get_running_loop
from collections.abc import Callable, Hashable, Iterable, Mapping, MutableMapping
from threading import get_ident as _get_ident
from types import CoroutineType, TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

from . import _common
from ._common import MAX_DISPATCH_WAITS, LoadFunction
from ._common import yield_once as _yield_once

__all__ = ("DataLoader",)

_K = TypeVar("_K")
_V = TypeVar("_V")


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


class DataLoader(Generic[_K, _V]):
    """Batches, de-duplicates and caches the loads of many concurrent callers.

    ``load(key)`` returns a future at once; the keys requested while the event
    loop is busy are collected and passed, in request order and each once, to a
    single call of ``load_fn``, whose results resolve every caller's future and
    (with ``cache=True``) are kept in ``cache_map``.
    """

    __slots__ = (
        "load_fn",
        "max_batch_size",
        "cache",
        "cache_map",
        "cache_key_fn",
        "name",
        "_loop",
        "_create_future",
        "_ready",
        "_thread_check",
        "_queue",
        "_queue_keys",
        "_in_flight",
        "_more_waiters",
        "_dispatch_handle",
        "_dispatch_seen",
        "_dispatch_waits",
        "_batches",
        "_batch_counter",
        "_closing",
        "_shutdown_errors",
        "_entered",
        "__weakref__",
    )

    load_fn: LoadFunction[_K, _V]
    max_batch_size: int | None
    cache: bool
    cache_map: MutableMapping[Any, _V]
    cache_key_fn: Callable[[_K], Hashable] | None
    name: str

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
    ) -> None:
        _common.validate_arguments(load_fn, max_batch_size, cache, cache_map, cache_key_fn, name, loop)
        self.load_fn = load_fn
        self.max_batch_size = max_batch_size
        self.cache = cache
        self.cache_map = {} if cache_map is None else cache_map
        self.cache_key_fn = cache_key_fn
        self.name = _common.loader_name(load_fn, name)
        self._loop: AbstractEventLoop | None = None
        self._create_future: Callable[[], Future[Any]] | None = None
        self._ready = None
        self._thread_check = False
        # Queued keys (not dispatched yet), in request order: cache key -> first waiter.
        self._queue: dict[Any, Any] = {}
        # With a cache_key_fn: cache key -> the original key, for load_fn.
        self._queue_keys: dict[Any, Any] = {}
        # Keys whose load_fn call is running and whose result may be cached.
        self._in_flight: dict[Any, Any] = {}
        # A key's first waiter -> the waiters that joined it.
        self._more_waiters: dict[Any, list[Any]] = {}
        self._dispatch_handle: Any = None
        self._dispatch_seen = 0
        self._dispatch_waits = 0
        self._batches: set[Task[None]] = set()
        self._batch_counter = 0
        self._closing = False
        self._shutdown_errors: list[Exception] = []
        self._entered = False
        if loop is not None:
            self._bind(loop)

    # ------------------------------------------------------------ public API

    def load(self, key: _K) -> Future[_V]:
        """Return a future of the value for ``key``, batched with concurrent loads."""
        loop = self._loop
        if self._thread_check:
            if loop._thread_id != _get_ident():  # type: ignore[union-attr]
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        cache_key_fn = self.cache_key_fn
        cache_key = key if cache_key_fn is None else cache_key_fn(key)
        try:
            if self.cache:
                cache_map = self.cache_map
                if cache_key in cache_map:
                    future: Future[_V] = self._create_future()  # type: ignore[misc]
                    future.set_result(cache_map[cache_key])
                    return future
            future = self._create_future()  # type: ignore[misc]
            entry = self._in_flight.get(cache_key) if self._in_flight else None
            if entry is None:
                queue = self._queue
                first_key = not queue
                # One dict operation both finds a queued key and queues a new one.
                entry = queue.setdefault(cache_key, future)
                queued_now = entry is future
                if queued_now:
                    if first_key:
                        self._schedule_dispatch(loop)  # type: ignore[arg-type]  # bound by now
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = key
                    return future
        except TypeError as error:
            raise self._key_error(cache_key, key, error) from None
        # The key is queued or in flight already: join its first waiter.
        more = self._more_waiters.get(entry)
        if more is None:
            self._more_waiters[entry] = [future]
        else:
            more.append(future)
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
        keys = list(keys)
        cache_key_fn = self.cache_key_fn
        cache_keys = keys if cache_key_fn is None else [cache_key_fn(key) for key in keys]
        future: Future[list[Any]] = self._create_future()  # type: ignore[misc]
        results: list[Any] = [None] * len(keys)
        collector = _Collector(future, results, return_exceptions)
        # First pass: answer cache hits and check every key, so a bad key leaves nothing queued.
        missing: list[int] = []
        index = 0
        try:
            if self.cache:
                cache_map = self.cache_map
                for index, cache_key in enumerate(cache_keys):
                    if cache_key in cache_map:
                        results[index] = cache_map[cache_key]
                        collector.remaining -= 1
                    else:
                        missing.append(index)
            else:
                for index in range(len(cache_keys)):
                    hash(cache_keys[index])
                missing = list(range(len(keys)))
        except TypeError as error:
            raise self._key_error(cache_keys[index], keys[index], error) from None
        queue = self._queue
        in_flight = self._in_flight
        for index in missing:
            cache_key = cache_keys[index]
            waiter = (collector, index)
            entry = in_flight.get(cache_key) if in_flight else None
            if entry is None:
                first_key = not queue
                entry = queue.setdefault(cache_key, waiter)
                if entry is waiter:
                    if first_key:
                        self._schedule_dispatch(loop)  # type: ignore[arg-type]  # bound by now
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = keys[index]
                    continue
            more = self._more_waiters.get(entry)
            if more is None:
                self._more_waiters[entry] = [waiter]
            else:
                more.append(waiter)
        if collector.remaining == 0:
            future.set_result(results)
        return future

    def clear(self, key: _K) -> None:
        """Forget the cached value of ``key``; a running fetch of it is detached."""
        cache_key = self._cache_key(key)
        try:
            del self.cache_map[cache_key]
        except KeyError:
            pass
        self._in_flight.pop(cache_key, None)

    def clear_many(self, keys: Iterable[_K]) -> None:
        """Forget the cached values of ``keys``; running fetches of them are detached."""
        for key in keys:
            self.clear(key)

    def clear_all(self) -> None:
        """Empty the cache; every running fetch is detached."""
        self.cache_map.clear()
        self._in_flight.clear()

    def prime(self, key: _K, value: _V) -> None:
        """Store ``value`` for ``key`` (overwriting); a running fetch of it is detached."""
        cache_key = self._cache_key(key)
        self.cache_map[cache_key] = value
        self._in_flight.pop(cache_key, None)

    def prime_many(self, data: Mapping[_K, _V]) -> None:
        """Store every key-value pair of ``data``, as ``prime`` does."""
        for key, value in data.items():
            self.prime(key, value)

    async def shutdown(self) -> ExceptionGroup[Exception] | None:
        """Cancel the scheduled dispatch, running batches and every pending future.

        Waits for the batches to finish and returns an ExceptionGroup of the
        exceptions (other than cancellation) that load_fn raised while being
        cancelled, or None. Idempotent; the loader stays usable.
        """
        handle = self._dispatch_handle
        if handle is not None:
            handle.cancel()
            self._dispatch_handle = None
        queue = self._queue
        self._queue = {}
        self._queue_keys = {}
        for entry in queue.values():
            self._cancel_entry(entry)
        for entry in self._in_flight.values():
            # Their batches are cancelled below and drop the joined waiters themselves.
            _cancel(entry)
            for waiter in self._more_waiters.get(entry, ()):
                _cancel(waiter)
        batches = list(self._batches)
        errors: list[Exception] = []
        self._shutdown_errors = errors
        self._closing = True
        try:
            for task in batches:
                task.cancel()
            for task in batches:
                try:
                    await task
                except CancelledError:
                    pass
        finally:
            self._closing = False
            # A dispatch task cancelled before its first step never removed itself.
            self._batches.difference_update(batches)
        return _common.shutdown_error_group(self.name, errors)

    async def __aenter__(self) -> DataLoader[_K, _V]:
        if self._entered:
            raise _common.entered_twice_error(self.name)
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
            type(self).__name__, self.name, len(self.cache_map), len(self._queue), len(self._in_flight)
        )

    # ------------------------------------------------------------ loop binding

    def _bind(self, loop: AbstractEventLoop) -> None:
        self._loop = loop
        self._create_future = loop.create_future
        self._ready = _common.ready_queue(loop)
        self._thread_check = _common.checks_thread_id(loop)

    def _loop_for_call(self) -> AbstractEventLoop:
        """The slow path of load(): bind, rebind, or explain why the loop is wrong."""
        running = _get_running_loop()
        loop = self._loop
        if running is None:
            if loop is None:
                raise _common.no_loop_error(self.name)
            if loop.is_closed():
                raise _common.closed_loop_error(self.name)
            if loop.is_running():  # running, but not in this thread: never touch it from here
                raise _common.other_thread_error(self.name)
            return loop
        if loop is not None and running is not loop:
            busy = len(self._queue) + len(self._in_flight) + len(self._batches)
            if busy:
                raise _common.other_loop_error(self.name, busy)
        self._bind(running)
        return running

    # ------------------------------------------------------------ keys

    def _cache_key(self, key: _K) -> Hashable:
        cache_key_fn = self.cache_key_fn
        return key if cache_key_fn is None else cache_key_fn(key)

    def _key_error(self, cache_key: Any, key: Any, error: TypeError) -> TypeError:
        return _common.check_key_hashable(self.name, cache_key, key, error) or error

    # ------------------------------------------------------------ dispatch

    def _schedule_dispatch(self, loop: AbstractEventLoop) -> None:
        # The caller queues the first key right after this.
        self._dispatch_seen = 1
        self._dispatch_waits = 0
        ready = self._ready
        if ready is None or not ready:
            # An idle asyncio loop, or uvloop (which hides its ready queue): the batch's own
            # task looks one iteration on and then runs the batch itself, as in 0.1.1.
            self._batch_counter += 1
            name = _common.task_name(self.name, self._batch_counter)
            task = loop.create_task(self._dispatch_task(), name=name)
            self._batches.add(task)
            self._dispatch_handle = task
        else:
            # A busy asyncio loop: a 0-delay timer fires after this iteration's callbacks.
            self._dispatch_handle = loop.call_at(loop.time(), self._dispatch_check)

    async def _dispatch_task(self) -> None:
        """The dispatch on an idle asyncio loop or on uvloop, in the task that then runs the batch."""
        self._dispatch_handle = None
        loop = self._loop
        ready = self._ready
        if ready is None:
            # uvloop: a yielding task resumes after every callback queued before it, so each
            # look sees a whole iteration; look once more while keys keep arriving.
            try:
                await _yield_once()
                while len(self._queue) > self._dispatch_seen and self._dispatch_waits < MAX_DISPATCH_WAITS:
                    self._dispatch_seen = len(self._queue)
                    self._dispatch_waits += 1
                    await _yield_once()
            except BaseException:  # cancelled (shutdown, or the loop closing)
                self._batches.discard(_current_task(loop))
                raise
        elif ready:  # the asyncio loop got busy meanwhile: watch whole iterations instead
            self._batches.discard(_current_task(loop))
            self._dispatch_handle = loop.call_at(loop.time(), self._dispatch_check)
            return
        batch = self._take_queue()
        size = self.max_batch_size
        if batch is not None and (size is None or len(batch[0]) <= size):
            await self._run_batch(*batch)
            return
        self._batches.discard(_current_task(loop))
        if batch is not None:  # split batches start together, each in its own task
            self._start_batches(*batch)

    def _dispatch_check(self) -> None:
        """On a busy asyncio loop, after each iteration: wait one more while keys keep arriving."""
        queued = len(self._queue)
        ready = self._ready
        if (
            queued > self._dispatch_seen
            and self._dispatch_waits < MAX_DISPATCH_WAITS
            and ready  # an idle loop can bring no more keys before the next I/O
        ):
            self._dispatch_seen = queued
            self._dispatch_waits += 1
            loop = self._loop
            self._dispatch_handle = loop.call_at(loop.time(), self._dispatch_check)
            return
        self._dispatch_handle = None
        self._dispatch()

    def _dispatch(self) -> None:
        """Send every queued key with a live waiter, in batches of max_batch_size."""
        batch = self._take_queue()
        if batch is not None:
            self._start_batches(*batch)

    def _take_queue(self) -> tuple[list[Any], list[Any], list[Any]] | None:
        """Take every queued key with a live waiter, now in flight: (keys, cache keys, waiters)."""
        queue = self._queue
        self._queue = {}
        cache_keys = list(queue)
        entries = list(queue.values())
        for entry in entries:
            # Cheap test on the first waiter; a done one may still have live joiners.
            if (entry[0].future.done() if type(entry) is tuple else entry.done()) and not self._is_live(entry):
                cache_keys, entries = self._drop_dead_keys(queue)
                break
        if self.cache_key_fn is None:
            keys = cache_keys
        else:
            queue_keys = self._queue_keys
            self._queue_keys = {}
            keys = [queue_keys[cache_key] for cache_key in cache_keys]
        if not cache_keys:
            return None
        self._in_flight.update(zip(cache_keys, entries))
        return keys, cache_keys, entries

    def _start_batches(self, keys: list[Any], cache_keys: list[Any], entries: list[Any]) -> None:
        count = len(keys)
        size = self.max_batch_size
        if size is None or count <= size:
            self._start_batch(keys, cache_keys, entries)
        else:
            for start in range(0, count, size):
                stop = start + size
                self._start_batch(keys[start:stop], cache_keys[start:stop], entries[start:stop])

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

    def _start_batch(self, keys: list[Any], cache_keys: list[Any], entries: list[Any]) -> None:
        self._batch_counter += 1
        name = _common.task_name(self.name, self._batch_counter)
        task = _common.start_task(self._loop, self._run_batch(keys, cache_keys, entries), name)  # type: ignore[arg-type]
        if task is not None:
            self._batches.add(task)

    # ------------------------------------------------------------ batches

    async def _run_batch(self, keys: list[Any], cache_keys: list[Any], entries: list[Any]) -> None:
        """Call load_fn once and answer every waiter of the batch, whatever happens."""
        try:
            try:
                # A new list: a load_fn that sorts or mutates its argument cannot misroute results.
                awaitable = self.load_fn(list(keys))
                if type(awaitable) is not CoroutineType and not _common.is_awaitable(awaitable):
                    raise _common.not_awaitable_error(self.name, awaitable)
                results = await awaitable
            except (CancelledError, GeneratorExit):  # GeneratorExit: the task was garbage collected
                self._cancel_entries(cache_keys, entries)
                raise
            except Exception as error:
                self._fail_entries(cache_keys, entries, error)
                if self._closing:
                    self._shutdown_errors.append(error)
                return
            except BaseException as interrupt:  # KeyboardInterrupt, SystemExit: fail, then propagate
                self._fail_entries(cache_keys, entries, _common.interrupted_error(self.name, interrupt))
                raise
            try:
                self._resolve(keys, cache_keys, entries, results)
            except Exception as error:  # a bad result shape: raised before any waiter is answered
                self._fail_entries(cache_keys, entries, error)
        finally:
            self._batches.discard(_current_task(self._loop))

    def _resolve(self, keys: list[Any], cache_keys: list[Any], entries: list[Any], results: Any) -> None:
        if type(results) is not list and type(results) is not tuple:
            results = _common.results_as_list(
                self.name, keys, keys if self.cache_key_fn is None else cache_keys, results
            )
        elif len(results) != len(entries):
            raise _common.wrong_length_error(self.name, len(entries), len(results))
        in_flight = self._in_flight
        more_waiters = self._more_waiters
        cache_map = self.cache_map if self.cache else None
        for cache_key, entry, value in zip(cache_keys, entries, results):
            attached = in_flight.pop(cache_key, None)
            if attached is not entry:
                if attached is not None:  # a newer fetch of this key: not ours to touch
                    in_flight[cache_key] = attached
                attached = None
            if isinstance(value, Exception):
                self._fail_entry(entry, value)
                continue
            if attached is not None and cache_map is not None:
                try:
                    cache_map[cache_key] = value
                except Exception as error:  # a custom cache_map refused it: fail this key only
                    self._fail_entry(entry, error)
                    continue
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

    def _fail_entries(self, cache_keys: list[Any], entries: list[Any], error: BaseException) -> None:
        self._detach(cache_keys, entries)
        for entry in entries:
            self._fail_entry(entry, error)

    def _cancel_entries(self, cache_keys: list[Any], entries: list[Any]) -> None:
        self._detach(cache_keys, entries)
        for entry in entries:
            self._cancel_entry(entry)

    def _fail_entry(self, entry: Any, error: BaseException) -> None:
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
