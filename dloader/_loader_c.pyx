# cython: language_level=3, freethreading_compatible=True
"""The compiled DataLoader: the hot path (queueing, batch assembly, resolution) in C.

The twin of ``_loader_py.py``: same methods in the same order, same behaviour;
the shared slow paths and messages live in ``_common``.
"""

cimport cython
from cpython.dict cimport PyDict_SetItem
from cpython.pythread cimport PyThread_get_thread_ident

cdef extern from "Python.h":
    # A type-flag test (no references involved); Cython's cpython/ does not declare it.
    bint PyExceptionInstance_Check(object value)

import asyncio
import contextvars
import sys
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine
from types import CoroutineType, GenericAlias

from . import _common
from ._common import MAX_DISPATCH_WAITS

# Looked up once: the hot path calls these for every key or batch.
cdef object _get_running_loop = asyncio.events._get_running_loop
cdef object _current_task = asyncio.current_task
cdef object CancelledError = asyncio.CancelledError
cdef object InvalidStateError = asyncio.InvalidStateError
cdef object _CoroutineType = CoroutineType
cdef Py_ssize_t _MAX_DISPATCH_WAITS = MAX_DISPATCH_WAITS
cdef object _yield_once = _common.yield_once
cdef object _MISSING = object()
cdef object _Task = asyncio.Task
cdef object _copy_context = contextvars.copy_context
cdef bint _NATIVE_EAGER_TASKS = sys.version_info >= (3, 12)


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


cdef inline bint _runs_in_this_thread(object loop) except -1:
    # See _common.checks_thread_id: only for asyncio's loops on Python 3.11.
    thread_id = loop._thread_id
    return thread_id is not None and <unsigned long>thread_id == PyThread_get_thread_ident()


# A key's waiters: the first one is stored bare (in the queue and in-flight dicts);
# any others wait in DataLoader._more_waiters under that first waiter. Most keys
# have one waiter, so most keys cost no list.


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


cdef object _start_task(object loop, object coroutine, str name):
    """Start a batch's coroutine in a named task, running its first step now.

    Returns the task while the coroutine is still running, None once it finished.
    The compiled copy of ``_common.start_task`` (same logic, line for line): on
    Python 3.11 the eager start costs a third of a lone load in pure Python.
    """
    if loop.get_task_factory() is not None or _current_task(loop) is not None:
        return loop.create_task(coroutine, name=name)
    if _NATIVE_EAGER_TASKS:
        task = _Task(coroutine, loop=loop, name=name, eager_start=True)
        return None if task.done() else task
    cdef _EagerStart eager = _EagerStart(coroutine)
    context = _copy_context()
    task = _Task(eager, loop=loop, name=name, context=context)
    _enter_task(loop, task)
    try:
        context.run(eager.first_step)
    finally:
        _leave_task(loop, task)
    if eager.interrupt is not None:
        raise eager.interrupt
    # The coroutine may be finished although the task is not done until its next step.
    return task if eager.state == _SUSPENDED else None


# _EagerStart.state values
cdef enum:
    _SUSPENDED = 1
    _RETURNED = 2
    _RAISED = 3
    _RUNNING = 4


@cython.final
cdef class _EagerStart:
    """Python 3.11's eager task start: a coroutine whose first step already ran.

    See ``_common._EagerStart``, the pure-Python version of the same logic.
    """

    cdef object coroutine
    cdef int state
    cdef object value
    cdef object interrupt

    def __cinit__(self, object coroutine):
        self.coroutine = coroutine
        self.state = 0
        self.value = None
        self.interrupt = None

    def first_step(self):
        try:
            self.value = self.coroutine.send(None)
            self.state = _SUSPENDED
        except StopIteration as stop:
            self.state = _RETURNED
            self.value = stop.value
        except (KeyboardInterrupt, SystemExit) as interrupt:
            self.state = _RAISED
            self.value = CancelledError()
            self.interrupt = interrupt
        except BaseException as error:
            self.state = _RAISED
            self.value = error

    def send(self, value):
        cdef int state = self.state
        if state == _RUNNING:
            return self.coroutine.send(value)
        self.state = _RUNNING
        if state == _RETURNED:
            raise StopIteration(self.value)
        if state == _RAISED:
            error, self.value = self.value, None
            raise error
        blocked_on, self.value = self.value, None
        if blocked_on is None or blocked_on.done():
            if blocked_on is not None:
                blocked_on._asyncio_future_blocking = False
            return self.coroutine.send(None)
        return blocked_on

    def throw(self, typ, val=None, tb=None):
        if self.state == _SUSPENDED:
            self.state = _RUNNING
            blocked_on, self.value = self.value, None
            if blocked_on is not None:
                blocked_on.cancel()
        elif self.state != _RUNNING:
            self.state = _RUNNING
            self.value = None
            self.coroutine.close()
        if val is None and tb is None:
            return self.coroutine.throw(typ)
        return self.coroutine.throw(typ, val, tb)

    def close(self):
        self.coroutine.close()

    def __await__(self):
        raise TypeError("_EagerStart is driven by its task, not awaited")


Coroutine.register(_EagerStart)


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
    ):
        _common.validate_arguments(load_fn, max_batch_size, cache, cache_map, cache_key_fn, name, loop)
        self.load_fn = load_fn
        self.max_batch_size = max_batch_size
        self.cache = cache
        self.cache_map = {} if cache_map is None else cache_map
        self.cache_key_fn = cache_key_fn
        self.name = _common.loader_name(load_fn, name)
        self._loop = None
        self._create_future = None
        self._ready = None
        self._thread_check = False
        # Queued keys (not dispatched yet), in request order: cache key -> first waiter.
        self._queue = {}
        # With a cache_key_fn: cache key -> the original key, for load_fn.
        self._queue_keys = {}
        # Keys whose load_fn call is running and whose result may be cached.
        self._in_flight = {}
        # A key's first waiter -> the waiters that joined it.
        self._more_waiters = {}
        self._dispatch_handle = None
        self._dispatch_seen = 0
        self._dispatch_waits = 0
        self._batches = set()
        self._batch_counter = 0
        self._closing = False
        self._shutdown_errors = []
        self._entered = False
        if loop is not None:
            self._bind(loop)

    # ------------------------------------------------------------ public API

    def load(self, key):
        """Return a future of the value for ``key``, batched with concurrent loads."""
        cdef object loop = self._loop
        cdef object cache_key
        cdef object entry
        cdef object future
        cdef dict queue
        cdef bint first_key, queued_now
        if self._thread_check:
            if not _runs_in_this_thread(loop):
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        cache_key_fn = self.cache_key_fn
        cache_key = key if cache_key_fn is None else cache_key_fn(key)
        try:
            if self.cache:
                cache_map = self.cache_map
                if type(cache_map) is dict:  # the default: one lookup for hit or miss
                    value = (<dict>cache_map).get(cache_key, _MISSING)
                    if value is not _MISSING:
                        future = self._create_future()
                        future.set_result(value)
                        return future
                elif cache_key in cache_map:
                    future = self._create_future()
                    future.set_result(cache_map[cache_key])
                    return future
            future = self._create_future()
            entry = self._in_flight.get(cache_key) if self._in_flight else None
            if entry is None:
                queue = self._queue
                first_key = not queue
                # One dict operation both finds a queued key and queues a new one.
                entry = queue.setdefault(cache_key, future)
                queued_now = entry is future
                if queued_now:
                    if first_key:
                        self._schedule_dispatch(loop)
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
            (<list>more).append(future)
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
        cdef Py_ssize_t index = 0
        cdef Py_ssize_t count
        cdef _Collector collector
        cdef dict queue
        cdef dict in_flight
        cdef object entry
        cdef bint first_key
        if self._thread_check:
            if not _runs_in_this_thread(loop):
                loop = self._loop_for_call()
        elif _get_running_loop() is not loop or loop is None:
            loop = self._loop_for_call()
        key_list = list(keys)
        count = len(key_list)
        cache_key_fn = self.cache_key_fn
        cache_keys = key_list if cache_key_fn is None else [cache_key_fn(key) for key in key_list]
        future = self._create_future()
        results = [None] * count
        collector = _Collector(future, results, return_exceptions)
        # First pass: answer cache hits and check every key, so a bad key leaves nothing queued.
        missing = []
        try:
            if self.cache:
                cache_map = self.cache_map
                for index in range(count):
                    cache_key = cache_keys[index]
                    if cache_key in cache_map:
                        results[index] = cache_map[cache_key]
                        collector.remaining -= 1
                    else:
                        missing.append(index)
            else:
                for index in range(count):
                    hash(cache_keys[index])
                missing = list(range(count))
        except TypeError as error:
            raise self._key_error(cache_keys[index], key_list[index], error) from None
        queue = self._queue
        in_flight = self._in_flight
        for item in missing:
            index = item
            cache_key = cache_keys[index]
            waiter = (collector, index)
            entry = in_flight.get(cache_key) if in_flight else None
            if entry is None:
                first_key = not queue
                entry = queue.setdefault(cache_key, waiter)
                if entry is waiter:
                    if first_key:
                        self._schedule_dispatch(loop)
                    if cache_key_fn is not None:
                        self._queue_keys[cache_key] = key_list[index]
                    continue
            more = self._more_waiters.get(entry)
            if more is None:
                self._more_waiters[entry] = [waiter]
            else:
                (<list>more).append(waiter)
        if collector.remaining == 0:
            future.set_result(results)
        return future

    def clear(self, key):
        """Forget the cached value of ``key``; a running fetch of it is detached."""
        cache_key = self._cache_key(key)
        try:
            del self.cache_map[cache_key]
        except KeyError:
            pass
        self._in_flight.pop(cache_key, None)

    def clear_many(self, keys):
        """Forget the cached values of ``keys``; running fetches of them are detached."""
        for key in keys:
            self.clear(key)

    def clear_all(self):
        """Empty the cache; every running fetch is detached."""
        self.cache_map.clear()
        self._in_flight.clear()

    def prime(self, key, value):
        """Store ``value`` for ``key`` (overwriting); a running fetch of it is detached."""
        cache_key = self._cache_key(key)
        self.cache_map[cache_key] = value
        self._in_flight.pop(cache_key, None)

    def prime_many(self, data):
        """Store every key-value pair of ``data``, as ``prime`` does."""
        for key, value in data.items():
            self.prime(key, value)

    async def shutdown(self):
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
        errors = []
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

    async def __aenter__(self):
        if self._entered:
            raise _common.entered_twice_error(self.name)
        self._entered = True
        if self._loop is None:
            self._loop_for_call()
        return self

    async def __aexit__(self, exc_type, exc_value, traceback):
        self._entered = False
        await self.shutdown()

    def __repr__(self):
        return _common.loader_repr(
            type(self).__name__, self.name, len(self.cache_map), len(self._queue), len(self._in_flight)
        )

    # ------------------------------------------------------------ loop binding

    cdef _bind(self, object loop):
        self._loop = loop
        self._create_future = loop.create_future
        self._ready = _common.ready_queue(loop)
        self._thread_check = _common.checks_thread_id(loop)

    cdef object _loop_for_call(self):
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

    cdef object _cache_key(self, object key):
        cache_key_fn = self.cache_key_fn
        return key if cache_key_fn is None else cache_key_fn(key)

    cdef object _key_error(self, object cache_key, object key, object error):
        return _common.check_key_hashable(self.name, cache_key, key, error) or error

    # ------------------------------------------------------------ dispatch

    cdef _schedule_dispatch(self, object loop):
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

    async def _dispatch_task(self):
        """The dispatch on an idle asyncio loop or on uvloop, in the task that then runs the batch."""
        self._dispatch_handle = None
        loop = self._loop
        ready = self._ready
        if ready is None:
            # uvloop: a yielding task resumes after every callback queued before it, so each
            # look sees a whole iteration; look once more while keys keep arriving.
            try:
                await _yield_once()
                while len(self._queue) > self._dispatch_seen and self._dispatch_waits < _MAX_DISPATCH_WAITS:
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
        if batch is not None and (size is None or len((<tuple>batch)[0]) <= <Py_ssize_t>size):
            await self._run_batch(*batch)
            return
        self._batches.discard(_current_task(loop))
        if batch is not None:  # split batches start together, each in its own task
            self._start_batches((<tuple>batch)[0], (<tuple>batch)[1], (<tuple>batch)[2])

    def _dispatch_check(self):
        """On a busy asyncio loop, after each iteration: wait one more while keys keep arriving."""
        cdef Py_ssize_t queued = len(self._queue)
        ready = self._ready
        if (
            queued > self._dispatch_seen
            and self._dispatch_waits < _MAX_DISPATCH_WAITS
            and ready  # an idle loop can bring no more keys before the next I/O
        ):
            self._dispatch_seen = queued
            self._dispatch_waits += 1
            loop = self._loop
            self._dispatch_handle = loop.call_at(loop.time(), self._dispatch_check)
            return
        self._dispatch_handle = None
        self._dispatch()

    cdef _dispatch(self):
        """Send every queued key with a live waiter, in batches of max_batch_size."""
        batch = self._take_queue()
        if batch is not None:
            self._start_batches((<tuple>batch)[0], (<tuple>batch)[1], (<tuple>batch)[2])

    cdef object _take_queue(self):
        """Take every queued key with a live waiter, now in flight: (keys, cache keys, waiters)."""
        cdef dict queue = self._queue
        cdef dict queue_keys
        cdef dict in_flight
        cdef list cache_keys
        cdef list entries
        cdef list keys
        cdef Py_ssize_t count, start
        self._queue = {}
        cache_keys = list(queue)
        entries = list(queue.values())
        for entry in entries:
            # Cheap test on the first waiter; a done one may still have live joiners.
            if _waiter_done(entry) and not self._is_live(entry):
                cache_keys, entries = self._drop_dead_keys(queue)
                break
        if self.cache_key_fn is None:
            keys = cache_keys
        else:
            queue_keys = self._queue_keys
            self._queue_keys = {}
            keys = [queue_keys[cache_key] for cache_key in cache_keys]
        count = len(cache_keys)
        if not count:
            return None
        in_flight = self._in_flight
        for start in range(count):  # no (key, entry) tuples, unlike dict.update(zip(...))
            PyDict_SetItem(in_flight, cache_keys[start], entries[start])
        return keys, cache_keys, entries

    cdef _start_batches(self, list keys, list cache_keys, list entries):
        cdef Py_ssize_t count = len(keys), size, start, stop
        if self.max_batch_size is None or count <= <Py_ssize_t>self.max_batch_size:
            self._start_batch(keys, cache_keys, entries)
        else:
            size = self.max_batch_size
            for start in range(0, count, size):
                stop = start + size
                self._start_batch(keys[start:stop], cache_keys[start:stop], entries[start:stop])

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

    cdef _start_batch(self, list keys, list cache_keys, list entries):
        self._batch_counter += 1
        name = _common.task_name(self.name, self._batch_counter)
        task = _start_task(self._loop, self._run_batch(keys, cache_keys, entries), name)
        if task is not None:
            self._batches.add(task)

    # ------------------------------------------------------------ batches

    async def _run_batch(self, list keys, list cache_keys, list entries):
        """Call load_fn once and answer every waiter of the batch, whatever happens."""
        try:
            try:
                # A new list: a load_fn that sorts or mutates its argument cannot misroute results.
                awaitable = self.load_fn(list(keys))
                if type(awaitable) is not _CoroutineType and not _common.is_awaitable(awaitable):
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

    cdef _resolve(self, list keys, list cache_keys, list entries, object results):
        cdef dict in_flight
        cdef dict more_waiters
        cdef object cache_map
        cdef Py_ssize_t index, count = len(entries)
        cdef list values
        if type(results) is list:
            values = <list>results
        elif type(results) is tuple:
            values = list(<tuple>results)
        else:
            values = _common.results_as_list(
                self.name, keys, keys if self.cache_key_fn is None else cache_keys, results
            )
        if len(values) != count:
            raise _common.wrong_length_error(self.name, count, len(values))
        in_flight = self._in_flight
        more_waiters = self._more_waiters
        cache_map = self.cache_map if self.cache else None
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

    cdef _fail_entries(self, list cache_keys, list entries, object error):
        self._detach(cache_keys, entries)
        for entry in entries:
            self._fail_entry(entry, error)

    cdef _cancel_entries(self, list cache_keys, list entries):
        self._detach(cache_keys, entries)
        for entry in entries:
            self._cancel_entry(entry)

    cdef _fail_entry(self, object entry, object error):
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
