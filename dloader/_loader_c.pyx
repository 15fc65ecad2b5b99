# cython: language_level=3, freethreading_compatible=True, binding=False
"""The compiled DataLoader: the hot path (queueing, batch assembly, resolution) in C.

The twin of ``_loader_py.py``: same classes and methods in the same order, same behaviour;
the shared slow paths and messages live in ``_common``.
"""

cimport cython
from cpython.dict cimport PyDict_Keys, PyDict_SetItem, PyDict_Values
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport PyObject, Py_XDECREF

cdef extern from "Python.h":
    # A type-flag test (no references involved); Cython's cpython/ does not declare it.
    bint PyExceptionInstance_Check(object value)
    # Steps a coroutine without raising StopIteration at its end (CPython >= 3.10); the
    # batch takes load_fn's first step by hand to learn whether it suspends.
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iterator, object argument, PyObject **result) except PYGEN_ERROR

import asyncio
import weakref
from collections import deque
from contextvars import copy_context
from types import CoroutineType, GenericAlias

from . import _common
from ._asyncio_private import NATIVE_EAGER_START, future_factory, ready_queue, thread_id_of
from ._asyncio_private import get_running_loop as _get_running_loop_function
from ._common import DEFAULT, MAX_DISPATCH_WAITS
from .value_cache import MISS

# Looked up once: the hot path calls these for every key or batch.
cdef object _get_running_loop = _get_running_loop_function
cdef object _current_task = asyncio.current_task
cdef object _wait = asyncio.wait
cdef object CancelledError = asyncio.CancelledError
cdef object InvalidStateError = asyncio.InvalidStateError
cdef object _CoroutineType = CoroutineType
cdef object _Task = asyncio.Task
cdef Py_ssize_t _MAX_DISPATCH_WAITS = MAX_DISPATCH_WAITS
cdef object _resume = _common.resume
cdef object _MISSING = object()
cdef object _MISS = MISS
cdef bint _NATIVE_EAGER_START = NATIVE_EAGER_START
cdef object _Deque = deque
cdef object _copy_context = copy_context


@cython.final
cdef class _YieldOnce:
    """``await _YieldOnce()``: let the loop run one round, as ``_common.yield_once`` does.

    The task sees a bare yield and resumes after the callbacks queued before it. An
    iterator object instead of a generator: no frame, and it ends without a StopIteration.
    """

    cdef bint yielded

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if self.yielded:
            raise StopIteration
        self.yielded = True
        return None


@cython.final
cdef class _Collector:
    """One load_many() call: its future and the result list it fills in place.

    A waiter of a key is either a Future (from load) or a ``(collector, index)``
    tuple (from load_many), so load_many needs no future per key.
    """

    def __cinit__(self, object future, list results, bint return_exceptions):
        self.future = future
        self.results = results
        self.remaining = len(results)
        self.return_exceptions = return_exceptions

    cdef void deliver(self, Py_ssize_t index, object value) except *:
        self.results[index] = value
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.results)

    cdef void fail(self, Py_ssize_t index, object error) except *:
        if self.return_exceptions:
            self.deliver(index, error)
        elif not self.future.done():
            self.future.set_exception(error)


cdef inline _check_self(object self, type cls):
    # An unbound coroutine method called on another object (DataLoader.shutdown(None)) gets
    # no type check from Cython; its body would then read C fields of that object.
    if not isinstance(self, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(self).__name__}")


cdef inline bint _runs_in_this_thread(object loop) except -1:
    # See _asyncio_private.thread_id_of: only for asyncio's loops on Python 3.11.
    thread_id = loop._thread_id
    return thread_id is not None and <unsigned long>thread_id == PyThread_get_thread_ident()


# A key's waiters: the first one is stored bare (in the queue and in-flight dicts);
# any others wait in DataLoader._more_waiters under that first waiter. Most keys
# have one waiter, so most keys cost no list.


cdef inline object _waiter_future(object waiter):
    if type(waiter) is tuple:
        return (<_Collector>(<tuple>waiter)[0]).future
    return waiter


cdef inline bint _waiter_done(object waiter) except -1:
    if type(waiter) is tuple:
        return (<_Collector>(<tuple>waiter)[0]).future.done()
    return waiter.done()


cdef inline _deliver(object waiter, object value):
    if type(waiter) is tuple:
        (<_Collector>(<tuple>waiter)[0]).deliver(<Py_ssize_t>(<tuple>waiter)[1], value)
    else:
        try:
            waiter.set_result(value)
        except InvalidStateError:  # that caller cancelled: nobody else is affected
            pass


cdef inline _fail(object waiter, object error):
    if type(waiter) is tuple:
        (<_Collector>(<tuple>waiter)[0]).fail(<Py_ssize_t>(<tuple>waiter)[1], error)
    elif not waiter.done():
        waiter.set_exception(error)


cdef inline _cancel(object waiter):
    if type(waiter) is tuple:
        (<_Collector>(<tuple>waiter)[0]).future.cancel()
    else:
        waiter.cancel()


cdef tuple _start_task(object loop, object coroutine, str name, object context, object on_done):
    """Start one of the loader's tasks so that it can never end before its first step unseen.

    See ``_loader_py._start_task``.
    """
    if (
        _NATIVE_EAGER_START
        and loop.get_task_factory() is None
        and loop.is_running()
        and _current_task(loop) is None  # never nested in another task's step
    ):
        return _Task(coroutine, loop=loop, name=name, context=context, eager_start=True), False
    task = loop.create_task(coroutine, name=name, context=context)
    task.add_done_callback(on_done)
    return task, True


@cython.final
cdef class _Batch:
    """One load_fn call's keys, waiters and task; owned by its loader from dispatch to the end."""

    # Built only by _new_batch: Python code can create an empty _Batch (its fields are
    # None, so a loader refuses it with a TypeError), never one with forged waiters, whose
    # unchecked casts would crash the interpreter.

    def task_done(self, task):
        """Done callback, where a task may end before its first step (then nothing ran)."""
        if not self.finished and self.loader is not None:
            self.loader._abandon_batch(self)

    def waiter_done(self, future):
        """Done callback of a watched batch's waiters: cancel load_fn when the last one cancelled."""
        # Only cancellation counts: a load_many that failed early still loads and caches its other keys.
        if not self.finished and future.cancelled() and self.loader is not None:
            self.live -= 1
            if self.live == 0:
                self.loader._unwanted(self)


cdef _Batch _new_batch(DataLoader loader, list keys, list cache_keys, list entries, object tokens):
    cdef _Batch batch = _Batch.__new__(_Batch)
    batch.loader = loader
    batch.keys = keys
    batch.cache_keys = cache_keys
    batch.entries = entries
    batch.tokens = tokens
    # The context of the call that queued the loader's first key: load_fn runs in a copy
    # of it (each task its own, as create_task gives) when the batch gets its own task.
    batch.context = loader._dispatch_context
    batch.task = None
    batch.guarded = False  # a done callback on the task guards the window before its first step
    batch.finished = False
    # While load_fn is suspended: how many of the batch's waiters still want a value.
    batch.live = 0
    batch.watched = False
    batch.running = False  # counted against max_concurrent_batches
    return batch


@cython.final
cdef class _Dispatcher:
    """Dispatches every loader of one event loop, in the order their first keys were queued.

    One per loop (and per twin): batches of different loaders start in request order,
    and one dispatch serves every loader that queued keys in the same iterations.
    """

    def __cinit__(self, object loop):
        self.loop = loop
        self.ready = ready_queue(loop)
        # Loaders with queued keys, in the order of their first key; a loader is here
        # exactly while its queue is not empty.
        self.pending = []
        # The scheduled dispatch: a task (idle asyncio loop, uvloop), a timer (busy asyncio loop) or None.
        self.handle = None
        self.waits = 0
        self.guarded = False

    cdef add(self, DataLoader loader):
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

    cdef object remove(self, DataLoader loader):
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
        return handle if isinstance(handle, _Task) else None

    cdef bint keys_arriving(self) except -1:
        """One look: whether a pending loader got keys since its last look and may wait for more.

        See ``_loader_py._Dispatcher.keys_arriving``.
        """
        cdef bint arriving = False
        cdef Py_ssize_t queued
        cdef DataLoader loader
        for item in self.pending:
            loader = <DataLoader>item
            if loader._dispatch_waits < 0:  # joined a dispatch already scheduled: its own first look is next
                loader._dispatch_waits = 0
                arriving = True
                continue
            queued = len(loader._queue)
            if queued > loader._dispatch_seen:
                loader._dispatch_seen = queued
                if loader._dispatch_waits < _MAX_DISPATCH_WAITS:
                    loader._dispatch_waits += 1
                    arriving = True
        if arriving and self.waits < 2 * _MAX_DISPATCH_WAITS:
            self.waits += 1
            return True
        return False

    async def _dispatch_task(self, DataLoader owner):
        """The dispatch on an idle asyncio loop or on uvloop, in a task named after ``owner``."""
        _check_self(self, _Dispatcher)
        cdef bint eager
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
                await _YieldOnce()  # look one iteration on, as a task's first step does
            ready = self.ready
            if ready is None:
                # uvloop: a yielding task resumes after every callback queued before it, so
                # each look sees a whole iteration; look once more while keys keep arriving.
                await _YieldOnce()
                while self.keys_arriving():
                    await _YieldOnce()
            elif ready:  # the asyncio loop got busy meanwhile: watch whole iterations instead
                self.handle = loop.call_at(loop.time(), self._check)
                return
        except BaseException:  # cancelled from outside before dispatching
            if self.handle is task:
                self._abandon()
            raise
        cdef list batches = self._take()
        cdef _Batch batch
        if len(batches) == 1 and (<_Batch>batches[0]).loader is owner:
            batch = <_Batch>batches[0]  # a lone batch runs in this task, named after its loader
            batch.task = task
            await owner._run_batch(batch)
        elif batches:
            self._start(batches, 0)

    def _task_done(self, task):
        if self.handle is task:  # ended before dispatching: cancelled before its first step
            self._abandon()

    cdef _abandon(self):
        """The dispatch task was cancelled from outside: its loaders' queued callers are cancelled."""
        pending = self.pending
        self.pending = []
        self.handle = None
        for loader in pending:
            (<DataLoader>loader)._cancel_queue()

    def _check(self):
        """On a busy asyncio loop, after each iteration: wait one more while keys keep arriving."""
        if self.keys_arriving() and self.ready:  # an idle loop can bring no more keys before the next I/O
            loop = self.loop
            self.handle = loop.call_at(loop.time(), self._check)
            return
        cdef list batches = self._take()
        if batches:
            self._start(batches, 0)

    cdef list _take(self):
        """Every pending loader's queued keys, now in flight, as batches in first-key order."""
        pending = self.pending
        self.pending = []
        self.handle = None
        cdef list batches = []
        for loader in pending:
            (<DataLoader>loader)._take_batches(batches)
        return batches

    def _start(self, list batches not None, Py_ssize_t index):
        """Start batches in order; after an interrupt the rest start in the next iteration."""
        cdef Py_ssize_t count = len(batches)
        cdef _Batch batch
        try:
            while index < count:
                batch = <_Batch?>batches[index]
                index += 1
                if batch.loader is None:
                    raise TypeError("not a batch of a DataLoader")
                batch.loader._start_batch_task(batch)
        except BaseException:
            if index < count:
                self.loop.call_soon(self._start, batches, index)
            raise


# Loop id -> its dispatcher, alive while a loader bound to that loop holds it (and so the
# loop, whose id cannot be reused meanwhile).
cdef object _dispatchers = weakref.WeakValueDictionary()


cdef _Dispatcher _dispatcher_for(object loop):
    dispatcher = _dispatchers.get(id(loop))
    if dispatcher is None or (<_Dispatcher>dispatcher).loop is not loop:
        dispatcher = _dispatchers[id(loop)] = _Dispatcher(loop)
    return <_Dispatcher>dispatcher


@cython.auto_pickle(False)
cdef class DataLoader:
    """Batches, de-duplicates and caches the loads of many concurrent callers.

    ``load(key)`` returns a future at once; the keys requested while the event
    loop is busy are collected and passed, in request order and each once, to a
    single call of ``load_fn``, whose results resolve every caller's future and
    (with ``cache=True``) are kept in ``cache_map``.
    """

    __class_getitem__ = classmethod(GenericAlias)
    # The compiled __init__ is a slot wrapper with no introspectable signature.
    __signature__ = _common.constructor_signature()

    def __init__(
        self,
        load_fn,
        max_batch_size=None,
        cache=True,
        loop=None,
        cache_map=None,
        *,
        cache_key_fn=None,
        name=None,
        cache_errors=False,
        max_concurrent_batches=None,
        stats=False,
        instrumentation=DEFAULT,
        value_cache=None,
    ):
        name = _common.validate_arguments(
            load_fn, max_batch_size, cache, cache_map, cache_key_fn, name, loop,
            cache_errors, max_concurrent_batches, stats,
        )
        self._load_fn = load_fn
        self._max_batch_size = max_batch_size
        self._batch_limit = _common.batch_limit(max_batch_size)
        self._cache = cache
        self._cache_map = {} if cache_map is None else cache_map
        self._cache_key_fn = cache_key_fn
        self._name = name
        self._cache_errors = cache_errors
        self._max_concurrent_batches = max_concurrent_batches
        self._counting = stats
        self._instrumentation = _common.check_instrumentation(name, instrumentation)
        self._observed = stats or self._instrumentation is not None
        self._value_cache = _common.check_value_cache(name, value_cache)
        self._loop = None
        self._create_future = None
        self._thread_check = False
        self._dispatcher = None
        # Queued keys (not dispatched yet), in request order: cache key -> first waiter.
        self._queue = {}
        # With a cache_key_fn: cache key -> the original key, for load_fn.
        self._queue_keys = {}
        # With instrumentation: (cache key or list of cache keys, token) of the queued calls.
        self._tokens = []
        # Keys whose load_fn call is running and whose result may be cached: cache key -> first waiter.
        self._in_flight = {}
        # A key's first waiter -> the waiters that joined it.
        self._more_waiters = {}
        # Cached failures (primed exceptions, cache_errors): cache key -> exception.
        self._errors = {}
        # First waiter -> its batch, for batches whose load_fn is suspended (watched).
        self._watched = {}
        self._batches = set()
        self._waiting = _Deque()  # batches held back by max_concurrent_batches
        self._running = 0
        self._batch_counter = 0
        # The dispatch's looks at this loader's queue: its length at the last look, and how
        # many extra iterations it has waited since its first key.
        self._dispatch_seen = 0
        self._dispatch_waits = 0
        self._dispatch_context = None
        self._cache_tasks = set()
        self._closing = 0
        self._shutdown_errors = []
        self._entered = False
        if loop is not None:
            self._bind(loop)

    # ------------------------------------------------------------ public attributes

    @property
    def load_fn(self):
        return self._load_fn

    @load_fn.setter
    def load_fn(self, value):
        self._load_fn = _common.check_load_fn(self._name, value)

    @property
    def max_batch_size(self):
        return self._max_batch_size

    @max_batch_size.setter
    def max_batch_size(self, value):
        self._max_batch_size = _common.check_max_batch_size(self._name, value)
        self._batch_limit = _common.batch_limit(value)

    @property
    def cache(self):
        return self._cache

    @cache.setter
    def cache(self, value):
        self._cache = _common.check_bool(self._name, "cache", value)

    @property
    def cache_map(self):
        return self._cache_map

    @cache_map.setter
    def cache_map(self, value):
        self._cache_map = _common.check_cache_map(self._name, value)

    @property
    def cache_key_fn(self):
        return self._cache_key_fn

    @cache_key_fn.setter
    def cache_key_fn(self, value):
        self._cache_key_fn = _common.check_cache_key_fn(self._name, value)

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = _common.check_name(value)

    @property
    def cache_errors(self):
        return self._cache_errors

    @cache_errors.setter
    def cache_errors(self, value):
        self._cache_errors = _common.check_cache_errors(self._name, value)

    @property
    def max_concurrent_batches(self):
        return self._max_concurrent_batches

    @max_concurrent_batches.setter
    def max_concurrent_batches(self, value):
        self._max_concurrent_batches = _common.check_max_concurrent_batches(self._name, value)

    @property
    def stats(self):
        """A snapshot of the loader's counters (``stats=True``), else None."""
        if not self._counting:
            return None
        return _common.LoaderStats(
            self._loads, self._cache_hits, self._joined, self._batches_called, self._batch_keys,
            self._batch_failures, self._key_failures, self._value_cache_hits, self._value_cache_errors,
        )

    @property
    def instrumentation(self):
        return self._instrumentation

    @property
    def value_cache(self):
        return self._value_cache

    # ------------------------------------------------------------ public API

    def load(self, key):
        """Return a future of the value for ``key``, batched with concurrent loads."""
        cdef object loop = self._loop
        cdef object cache_key
        cdef object entry
        cdef object future
        cdef dict queue
        cdef bint queued
        if self._thread_check:
            if not _runs_in_this_thread(loop):
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        cache_key_fn = self._cache_key_fn
        cache_key = key if cache_key_fn is None else cache_key_fn(key)
        try:
            if self._cache:
                cache_map = self._cache_map
                if type(cache_map) is dict:  # the default: one lookup for hit or miss
                    value = (<dict>cache_map).get(cache_key, _MISSING)
                    if value is not _MISSING:
                        future = self._create_future()
                        future.set_result(value)
                        if self._observed:
                            self._observe(key, future, None, False, 1, 0, 0)
                        return future
                elif cache_key in cache_map:
                    future = self._create_future()
                    future.set_result(cache_map[cache_key])
                    if self._observed:
                        self._observe(key, future, None, False, 1, 0, 0)
                    return future
                if self._errors and cache_key in self._errors:
                    future = self._create_future()
                    future.set_exception(self._errors[cache_key])
                    if self._observed:
                        self._observe(key, future, None, False, 1, 0, 0)
                    return future
            future = self._create_future()
            entry = self._in_flight.get(cache_key) if self._in_flight else None
            if entry is None:
                queue = self._queue
                # One dict operation both finds a queued key and queues a new one.
                entry = queue.setdefault(cache_key, future)
                if entry is future:
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = key
                    if len(queue) == 1:  # the first key: every bookkeeping is done, schedule
                        self._dispatcher.add(self)
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

    def load_many(self, keys, *, return_exceptions=False):
        """Return one future of the values for ``keys``, in order, duplicates kept.

        It fails with the first key that fails, unless ``return_exceptions`` is
        true: then failed positions hold the exception instead.
        """
        cdef object loop = self._loop
        cdef list key_list
        cdef list cache_keys
        cdef list results
        cdef list missing
        cdef list failed
        cdef Py_ssize_t index = 0
        cdef Py_ssize_t count, hits, joined = 0
        cdef bint schedule
        cdef _Collector collector
        cdef dict queue
        cdef dict in_flight
        cdef object entry
        cdef list queued_keys
        if self._thread_check:
            if not _runs_in_this_thread(loop):
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        if isinstance(keys, (str, bytes, bytearray)):
            raise _common.keys_argument_error(self._name, keys)
        key_list = list(keys)
        count = len(key_list)
        cache_key_fn = self._cache_key_fn
        cache_keys = key_list if cache_key_fn is None else [cache_key_fn(key) for key in key_list]
        future = self._create_future()
        results = [None] * count
        collector = _Collector(future, results, return_exceptions)
        # First pass: answer cache hits and check every key, so a bad key leaves nothing queued.
        missing = []
        failed = []
        try:
            if self._cache:
                cache_map = self._cache_map
                errors = self._errors
                if type(cache_map) is dict:
                    for index in range(count):
                        value = (<dict>cache_map).get(cache_keys[index], _MISSING)
                        if value is not _MISSING:
                            results[index] = value
                            collector.remaining -= 1
                        elif errors and cache_keys[index] in errors:
                            failed.append(index)
                        else:
                            missing.append(index)
                else:
                    for index in range(count):
                        cache_key = cache_keys[index]
                        if cache_key in cache_map:
                            results[index] = cache_map[cache_key]
                            collector.remaining -= 1
                        elif errors and cache_key in errors:
                            failed.append(index)
                        else:
                            missing.append(index)
            else:
                for index in range(count):
                    hash(cache_keys[index])
                missing = list(range(count))
        except TypeError as error:
            raise self._key_error(cache_keys[index], key_list[index], error) from None
        hits = count - len(missing)
        for index in failed:
            collector.fail(index, self._errors[cache_keys[index]])
        queue = self._queue
        in_flight = self._in_flight
        schedule = not queue  # the first keys queued: this call schedules the dispatch
        for index in missing:
            cache_key = cache_keys[index]
            waiter = (collector, index)
            entry = in_flight.get(cache_key) if in_flight else None
            if entry is None:
                entry = queue.setdefault(cache_key, waiter)
                if entry is waiter:
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = key_list[index]
                    continue
            joined += 1
            self._join(entry, waiter)
        if schedule and queue:  # every key is queued: now the dispatch may be scheduled
            self._dispatcher.add(self)
        if collector.remaining == 0 and not future.done():
            future.set_result(results)
        if self._observed:
            # The cache keys this call queued or joined while queued (the others joined running fetches).
            queued_keys = (
                [cache_keys[index] for index in missing if cache_keys[index] in queue]
                if self._instrumentation is not None
                else None
            )
            self._observe(key_list, future, queued_keys, True, hits, joined, len(missing) - joined)
        return future

    def clear(self, key):
        """Forget the cached value of ``key``; a running fetch of it is detached."""
        cache_key = self._cache_key(key)
        self._forget(cache_key)
        if self._value_cache is not None:
            self._schedule_cache_call("delete_many", [cache_key])

    def clear_many(self, keys):
        """Forget the cached values of ``keys``; running fetches of them are detached."""
        cache_keys = [self._cache_key(key) for key in keys]
        for cache_key in cache_keys:
            self._forget(cache_key)
        if self._value_cache is not None and cache_keys:
            self._schedule_cache_call("delete_many", cache_keys)

    def clear_all(self):
        """Empty the cache; every running fetch is detached."""
        self._cache_map.clear()
        self._errors.clear()
        self._in_flight.clear()
        if self._value_cache is not None:
            self._schedule_cache_call("clear", None)

    @cython.binding(True)  # a coroutine function to inspect, as in the pure twin; self checked inside
    async def invalidate(self, keys):
        """Forget ``keys`` here and wait until the value_cache has deleted them too."""
        _check_self(self, DataLoader)
        cache_keys = [self._cache_key(key) for key in keys]
        for cache_key in cache_keys:
            self._forget(cache_key)
        if self._value_cache is not None and cache_keys:
            await self._value_cache.delete_many(cache_keys)

    def prime(self, key, value, *, bint overwrite=True):
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
            entry = queue.pop(cache_key, _MISSING)
            if entry is not _MISSING:
                self._queue_keys.pop(cache_key, None)
                if not queue:
                    self._dispatcher.remove(self)
                if isinstance(value, Exception):
                    self._fail_entry(entry, value)
                else:
                    self._deliver_entry(entry, value)

    def prime_many(self, data, *, bint overwrite=True):
        """Store every key-value pair of ``data``, as ``prime`` does."""
        for key, value in data.items():
            self.prime(key, value, overwrite=overwrite)

    @cython.binding(True)  # a coroutine function to inspect, as in the pure twin; self checked inside
    async def shutdown(self):
        """Cancel the scheduled dispatch, running batches and every pending future.

        Waits for the batches to finish (and, with a value_cache, for its pending writes,
        at most its timeout) and returns an ExceptionGroup of the exceptions (other than
        cancellation) that load_fn raised while being cancelled, or None. Idempotent; the
        loader stays usable. Cancelling the task that awaits it cancels the wait.
        """
        _check_self(self, DataLoader)
        cdef _Batch batch
        tasks = []
        dispatcher = self._dispatcher
        if dispatcher is not None:
            cancelled_dispatch = self._dispatcher.remove(self)
            if cancelled_dispatch is not None:
                tasks.append(cancelled_dispatch)
        self._cancel_queue()
        if not self._closing:
            self._shutdown_errors = []
        errors = self._shutdown_errors
        self._closing += 1
        try:
            while self._waiting:
                batch = <_Batch>self._waiting.popleft()
                self._cancel_batch(batch)
                self._batch_ended(batch)
            for item in list(self._batches):
                batch = <_Batch>item
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
                await _wait(tasks)
                _common.retrieve(tasks)
            cache_tasks = self._cache_tasks
            if cache_tasks:
                timeout = getattr(self._value_cache, "timeout", None)
                pending = list(cache_tasks)
                _done, still = await _wait(pending, timeout=timeout)
                for task in still:
                    task.cancel()
                if still:
                    await _wait(still)
                _common.retrieve(pending)
                cache_tasks.difference_update(pending)  # their discard callbacks may not have run yet
        finally:
            self._closing -= 1
        return _common.shutdown_error_group(self._name, errors)

    @cython.binding(True)  # a coroutine function to inspect, as in the pure twin; self checked inside
    async def __aenter__(self):
        _check_self(self, DataLoader)
        if self._entered:
            raise _common.entered_twice_error(self._name)
        self._entered = True
        if self._loop is None:
            self._loop_for_call()
        return self

    @cython.binding(True)  # a coroutine function to inspect, as in the pure twin; self checked inside
    async def __aexit__(self, exc_type, exc_value, traceback):
        _check_self(self, DataLoader)
        self._entered = False
        await self.shutdown()

    def __repr__(self):
        return _common.loader_repr(
            type(self).__name__, self._name, len(self._cache_map), len(self._queue), len(self._in_flight)
        )

    def __copy__(self):
        raise _common.copy_error(type(self).__name__)

    def __deepcopy__(self, memo):
        raise _common.copy_error(type(self).__name__)

    def __reduce_ex__(self, protocol):
        raise _common.copy_error(type(self).__name__)

    def _debug_state(self):
        """Counts of the loader's internal state, for tests: all zero when it is idle."""
        dispatcher = self._dispatcher
        return {
            "queued": len(self._queue),
            "in_flight": len(self._in_flight),
            "batches": len(self._batches),
            "joined": len(self._more_waiters),
            "dispatch_scheduled": dispatcher is not None and self in self._dispatcher.pending,
            "pending_writes": len(self._cache_tasks),
        }

    # ------------------------------------------------------------ loop binding

    cdef _bind(self, object loop):
        self._loop = loop
        self._create_future = future_factory(loop)
        self._thread_check = thread_id_of(loop)
        self._dispatcher = _dispatcher_for(loop)

    cdef object _loop_for_call(self):
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

    cdef object _cache_key(self, object key):
        cache_key_fn = self._cache_key_fn
        return key if cache_key_fn is None else cache_key_fn(key)

    cdef object _key_error(self, object cache_key, object key, object error):
        found = _common.check_key_hashable(self._name, cache_key, key, error, self._cache_key_fn is not None)
        return found or error

    cdef _join(self, object entry, object waiter):
        cdef _Batch batch
        more = self._more_waiters.get(entry)
        if more is None:
            self._more_waiters[entry] = [waiter]
        else:
            (<list>more).append(waiter)
        if self._watched:
            found = self._watched.get(entry)
            if found is not None:  # its load_fn is suspended: the batch is wanted by one more
                batch = <_Batch>found
                batch.live += 1
                _waiter_future(waiter).add_done_callback(batch.waiter_done)

    cdef _forget(self, object cache_key):
        try:
            del self._cache_map[cache_key]
        except KeyError:
            pass
        if self._errors:
            self._errors.pop(cache_key, None)
        self._in_flight.pop(cache_key, None)

    cdef _observe(
        self, object key, object future, object queued, bint many,
        Py_ssize_t hits, Py_ssize_t joined, Py_ssize_t fetched,
    ):
        """Statistics and instrumentation of one load()/load_many() call (off: never called)."""
        if self._counting:
            self._loads += hits + joined + fetched
            self._cache_hits += hits
            self._joined += joined
        instrumentation = self._instrumentation
        if instrumentation is not None:
            token = instrumentation.on_load(self, key, future, many)
            # queued: the cache key that call queued or joined while queued (any value, even
            # a falsy one), a list of them (load_many), or None.
            if token is not None and queued is not None and (type(queued) is not list or queued):
                self._tokens.append((queued, token))

    # ------------------------------------------------------------ dispatch

    cdef _unqueue(self):
        """Scheduling the dispatch failed (a task factory raised): the queue, which held only
        the keys of the failing call, is emptied (nothing was handed out for them)."""
        queue = self._queue
        self._queue = {}
        self._queue_keys = {}
        self._tokens = []
        more_waiters = self._more_waiters
        for entry in queue.values():
            more_waiters.pop(entry, None)

    cdef _cancel_queue(self):
        queue = self._queue
        self._queue = {}
        self._queue_keys = {}
        self._tokens = []
        for entry in queue.values():
            self._cancel_entry(entry)

    cdef _take_batches(self, list out):
        """Move every queued key with a live waiter in flight, as batches of at most max_batch_size."""
        cdef dict queue = self._queue
        cdef dict queue_keys
        cdef dict in_flight
        cdef list cache_keys
        cdef list entries
        cdef list keys
        cdef list tokens
        cdef list part
        cdef Py_ssize_t count, start, stop, size
        self._queue = {}
        cache_keys = PyDict_Keys(queue)
        entries = PyDict_Values(queue)
        for entry in entries:
            # Cheap test on the first waiter; a done one may still have live joiners.
            if _waiter_done(entry) and not self._is_live(entry):
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
        in_flight = self._in_flight
        for start in range(count):  # no (key, entry) tuples, unlike dict.update(zip(...))
            PyDict_SetItem(in_flight, cache_keys[start], entries[start])
        size = self._batch_limit
        if count <= size:
            self._add_batch(
                out, _new_batch(self, keys, cache_keys, entries, [item[1] for item in tokens] if tokens else [])
            )
        else:
            for start in range(0, count, size):
                stop = start + size
                part = cache_keys[start:stop]
                self._add_batch(
                    out, _new_batch(self, keys[start:stop], part, entries[start:stop], _common.tokens_for(tokens, part))
                )
        self._dispatch_context = None

    cdef _add_batch(self, list out, _Batch batch):
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

    cdef bint _is_live(self, object entry) except -1:
        """Whether any waiter of a key still wants its value."""
        if not _waiter_done(entry):
            return True
        for waiter in self._more_waiters.get(entry, ()):
            if not _waiter_done(waiter):
                return True
        return False

    cdef tuple _drop_dead_keys(self, dict queue):
        cdef list cache_keys = []
        cdef list entries = []
        for cache_key, entry in queue.items():
            if self._is_live(entry):
                cache_keys.append(cache_key)
                entries.append(entry)
            else:
                self._more_waiters.pop(entry, None)
        return cache_keys, entries

    cdef _start_batch_task(self, _Batch batch):
        self._batch_counter += 1
        name = f"dloader:{self._name}:batch-{self._batch_counter}"
        coroutine = self._run_batch(batch)
        try:
            context = None if batch.context is None else batch.context.copy()
            batch.task, batch.guarded = _start_task(self._loop, coroutine, name, context, batch.task_done)
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

    async def _run_batch(self, _Batch batch not None):
        """Call load_fn once and answer every waiter of the batch, whatever happens."""
        _check_self(self, DataLoader)
        cdef PyObject *step
        cdef PySendResult status
        cdef Py_ssize_t failures = 0
        cdef list writes
        scope = None
        error = None
        if batch.guarded:  # past the first step: the guard would only add a callback to the loop
            batch.guarded = False
            batch.task.remove_done_callback(batch.task_done)
        try:
            try:
                if self._value_cache is not None and self._cache and await self._read_value_cache(batch):
                    return  # every key was in the value cache
                if self._counting:
                    self._batches_called += 1
                    self._batch_keys += len(batch.keys)
                if self._instrumentation is not None:
                    scope = self._instrumentation.on_batch(self, list(batch.keys), batch.tokens)
                    if scope is not None:
                        scope.enter()
                # A new list: a load_fn that sorts or mutates its argument cannot misroute results.
                awaitable = self._load_fn(batch.keys[:])
                if type(awaitable) is _CoroutineType:
                    iterator = awaitable
                else:
                    iterator = _common.await_iterator(self._name, awaitable)
                # load_fn's first step by hand: one that suspends gets its waiters watched.
                status = PyIter_Send(iterator, None, &step)
                yielded = <object>step  # a new reference: the extra one is dropped below
                Py_XDECREF(step)
                if status == PYGEN_RETURN:
                    results = yielded
                else:
                    self._watch(batch)
                    results = await _resume(iterator, yielded)
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
                if self._counting:
                    self._batch_failures += 1
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
                writes = [] if self._value_cache is not None and self._cache else None
                failures = self._resolve(batch.keys, batch.cache_keys, batch.entries, results, writes)
                if writes:
                    self._schedule_cache_call("set_many", writes)
            except Exception as exception:  # a bad result shape: raised before any waiter is answered
                error = exception
                self._fail_batch(batch, exception)
                if self._counting:
                    self._batch_failures += 1
        finally:
            self._batch_ended(batch)
            if scope is not None:
                self._exit_scope(scope, error, failures)

    cdef _exit_scope(self, object scope, object error, Py_ssize_t failures):
        try:
            scope.exit(error, failures)
        except Exception as exception:
            _common.log_cache_failure(self._name, "instrumentation.exit", exception)

    cdef Py_ssize_t _resolve(
        self, list keys, list cache_keys, list entries, object results, list writes
    ) except -1:
        """Answer waiters with load_fn's (or the value cache's) results; return the number of failed keys.

        A bad result shape raises before any waiter is answered. Cached values are also
        appended to ``writes`` (for the value cache) when it is a list.
        """
        cdef list values
        if type(results) is list:
            values = <list>results
        elif type(results) is tuple:
            values = list(<tuple>results)
        else:
            values = _common.results_as_list(
                self._name, keys, keys if self._cache_key_fn is None else cache_keys, results
            )
        if len(values) != len(cache_keys):
            raise _common.wrong_length_error(self._name, len(cache_keys), len(values))
        cdef dict in_flight = self._in_flight
        cdef dict more_waiters = self._more_waiters
        cdef object cache_map = self._cache_map if self._cache else None
        cdef Py_ssize_t index, count = len(entries)
        cdef Py_ssize_t failures = 0
        for index in range(count):
            cache_key = cache_keys[index]
            entry = entries[index]
            value = values[index]
            attached = in_flight.pop(cache_key, None)
            if attached is not entry:
                if attached is not None:  # a newer fetch of this key: not ours to touch
                    in_flight[cache_key] = attached
                attached = None
            if PyExceptionInstance_Check(value) and isinstance(value, Exception):  # a flag test first
                failures += 1
                if attached is not None and cache_map is not None and self._cache_errors is not False:
                    self._cache_error(keys[index], cache_key, value)
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
                (<_Collector>(<tuple>entry)[0]).deliver(<Py_ssize_t>(<tuple>entry)[1], value)
            else:
                try:
                    entry.set_result(value)
                except InvalidStateError:  # that caller cancelled: nobody else is affected
                    pass
            if more_waiters:
                more = more_waiters.pop(entry, None)
                if more is not None:
                    for waiter in <list>more:
                        _deliver(waiter, value)
        if failures and self._counting:
            self._key_failures += failures
        return failures

    cdef _cache_error(self, object key, object cache_key, object error):
        cache_errors = self._cache_errors
        if cache_errors is True or (cache_errors is not False and cache_errors(key, error)):
            self._errors[cache_key] = error

    cdef _watch(self, _Batch batch):
        """load_fn suspended: watch the waiters, so that a load_fn nobody waits for is cancelled."""
        callback = batch.waiter_done
        more_waiters = self._more_waiters
        watched = self._watched
        cdef Py_ssize_t live = 0
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

    cdef _unwanted(self, _Batch batch):
        """Every waiter of a running batch is gone: its keys are free again, load_fn is cancelled."""
        self._detach(batch.cache_keys, batch.entries)
        task = batch.task
        if task is not None and not task.done():
            task.cancel()

    cdef _batch_ended(self, _Batch batch):
        batch.finished = True
        self._batches.discard(batch)
        # Callbacks still queued for the batch (a watched waiter's, a task's) keep it alive
        # for an iteration or so: they must not keep the loader alive too.
        batch.loader = None
        if batch.watched:
            watched = self._watched
            for entry in batch.entries:
                if watched.get(entry) is batch:
                    del watched[entry]
        if batch.running:
            batch.running = False
            self._running -= 1
            self._start_waiting()

    cdef _start_waiting(self):
        """max_concurrent_batches: start held-back batches, in order, while there is room."""
        cdef _Batch batch
        limit = self._max_concurrent_batches
        waiting = self._waiting
        while waiting and (limit is None or self._running < limit):
            batch = <_Batch>waiting.popleft()
            if not any([self._is_live(entry) for entry in batch.entries]):
                self._cancel_batch(batch)
                batch.finished = True
                self._batches.discard(batch)
                continue
            self._running += 1
            batch.running = True
            self._start_batch_task(batch)

    cdef _abandon_batch(self, _Batch batch):
        """A batch task ended before running a step (cancelled from outside): cancel its waiters."""
        self._cancel_batch(batch)
        self._batch_ended(batch)

    cdef _fail_batch(self, _Batch batch, object error):
        self._detach(batch.cache_keys, batch.entries)
        for entry in batch.entries:
            self._fail_entry(entry, error)

    cdef _cancel_batch(self, _Batch batch):
        self._detach(batch.cache_keys, batch.entries)
        for entry in batch.entries:
            self._cancel_entry(entry)

    cdef _deliver_entry(self, object entry, object value):
        _deliver(entry, value)
        for waiter in self._more_waiters.pop(entry, ()):
            _deliver(waiter, value)

    cdef _fail_entry(self, object entry, object error):
        if isinstance(error, StopIteration):
            error = _common.settable_error(self._name, error)
        _fail(entry, error)
        for waiter in self._more_waiters.pop(entry, ()):
            _fail(waiter, error)

    cdef _cancel_entry(self, object entry):
        _cancel(entry)
        for waiter in self._more_waiters.pop(entry, ()):
            _cancel(waiter)

    cdef _detach(self, list cache_keys, list entries):
        cdef dict in_flight = self._in_flight
        for cache_key, entry in zip(cache_keys, entries):
            if in_flight.get(cache_key) is entry:
                del in_flight[cache_key]

    # ------------------------------------------------------------ value cache

    async def _read_value_cache(self, _Batch batch not None):
        """Answer the batch's keys found in the value cache; only misses stay. True when none is left."""
        _check_self(self, DataLoader)
        cache_keys = batch.cache_keys
        try:
            answer = await self._value_cache.get_many(list(cache_keys))
            if len(answer) != len(cache_keys):
                raise _common.bad_cache_answer(self._name, len(cache_keys), answer)
        except Exception as error:  # a cache failure never fails a load: load_fn answers instead
            if self._counting:
                self._value_cache_errors += 1
            _common.log_cache_failure(self._name, "get_many", error)
            return False
        cdef list hit_keys = [], hit_cache_keys = [], hit_entries = [], hit_values = []
        cdef list miss_keys = [], miss_cache_keys = [], miss_entries = []
        for key, cache_key, entry, value in zip(batch.keys, cache_keys, batch.entries, answer):
            if value is _MISS:
                miss_keys.append(key)
                miss_cache_keys.append(cache_key)
                miss_entries.append(entry)
            else:
                hit_keys.append(key)
                hit_cache_keys.append(cache_key)
                hit_entries.append(entry)
                hit_values.append(value)
        if hit_entries:
            if self._counting:
                self._value_cache_hits += len(hit_entries)
            self._resolve(hit_keys, hit_cache_keys, hit_entries, hit_values, None)
        batch.keys = miss_keys
        batch.cache_keys = miss_cache_keys
        batch.entries = miss_entries
        return not miss_entries

    cdef _schedule_cache_call(self, str operation, object argument):
        """Run a value_cache write or delete in a task the loader tracks (shutdown waits for it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        task = loop.create_task(self._cache_call(operation, argument), name=_common.write_task_name(self._name))
        if not task.done():  # (an eager task factory may have run it to its end already)
            self._cache_tasks.add(task)
            task.add_done_callback(self._cache_tasks.discard)

    async def _cache_call(self, str operation, object argument):
        _check_self(self, DataLoader)
        try:
            method = getattr(self._value_cache, operation)
            await (method() if argument is None else method(argument))
        except Exception as error:
            if self._counting:
                self._value_cache_errors += 1
            _common.log_cache_failure(self._name, operation, error)
