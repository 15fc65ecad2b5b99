# cython: language_level=3
# The compiled DataLoader's attribute layout and internal signatures; see _loader_c.pyx.

cimport cython


@cython.final
cdef class _Collector:
    cdef object future
    cdef list results
    cdef Py_ssize_t remaining
    cdef bint return_exceptions

    cdef void deliver(self, Py_ssize_t index, object value) except *
    cdef void fail(self, Py_ssize_t index, object error) except *


@cython.final
cdef class _Batch:
    cdef DataLoader loader
    cdef list keys
    cdef list cache_keys
    cdef list entries
    cdef object tokens
    cdef object context
    cdef object task
    cdef bint guarded
    cdef bint finished
    cdef Py_ssize_t live
    cdef bint watched
    cdef bint running


@cython.final
cdef class _Dispatcher:
    cdef object loop
    cdef object ready
    cdef list pending
    cdef object handle
    cdef Py_ssize_t waits
    cdef bint guarded
    cdef object __weakref__

    cdef add(self, DataLoader loader)
    cdef object remove(self, DataLoader loader)
    cdef bint keys_arriving(self) except -1
    cdef _abandon(self)
    cdef list _take(self)


cdef class DataLoader:
    cdef object _load_fn
    cdef object _max_batch_size
    cdef Py_ssize_t _batch_limit
    cdef bint _cache
    cdef object _cache_map
    cdef object _cache_key_fn
    cdef str _name
    cdef object _cache_errors
    cdef object _max_concurrent_batches
    cdef bint _counting
    cdef Py_ssize_t _loads, _cache_hits, _joined, _batches_called, _batch_keys
    cdef Py_ssize_t _batch_failures, _key_failures, _value_cache_hits, _value_cache_errors
    cdef object _instrumentation
    cdef bint _observed
    cdef object _value_cache
    cdef object _loop
    cdef object _create_future
    cdef bint _thread_check
    cdef _Dispatcher _dispatcher
    cdef dict _queue
    cdef dict _queue_keys
    cdef list _tokens
    cdef dict _in_flight
    cdef dict _more_waiters
    cdef dict _errors
    cdef dict _watched
    cdef set _batches
    cdef object _waiting
    cdef Py_ssize_t _running
    cdef Py_ssize_t _batch_counter
    cdef Py_ssize_t _dispatch_seen
    cdef Py_ssize_t _dispatch_waits
    cdef object _dispatch_context
    cdef set _cache_tasks
    cdef Py_ssize_t _closing
    cdef list _shutdown_errors
    cdef bint _entered
    cdef object __weakref__

    cdef _bind(self, object loop)
    cdef object _loop_for_call(self)
    cdef object _cache_key(self, object key)
    cdef object _key_error(self, object cache_key, object key, object error)
    cdef _join(self, object entry, object waiter)
    cdef _forget(self, object cache_key)
    cdef _observe(
        self, object key, object future, object queued, bint many,
        Py_ssize_t hits, Py_ssize_t joined, Py_ssize_t fetched,
    )
    cdef _unqueue(self)
    cdef _cancel_queue(self)
    cdef _take_batches(self, list out)
    cdef _add_batch(self, list out, _Batch batch)
    cdef bint _is_live(self, object entry) except -1
    cdef tuple _drop_dead_keys(self, dict queue)
    cdef _start_batch_task(self, _Batch batch)
    cdef _exit_scope(self, object scope, object error, Py_ssize_t failures)
    cdef Py_ssize_t _resolve(self, list keys, list cache_keys, list entries, object results, list writes) except -1
    cdef _cache_error(self, object key, object cache_key, object error)
    cdef _watch(self, _Batch batch)
    cdef _unwanted(self, _Batch batch)
    cdef _batch_ended(self, _Batch batch)
    cdef _start_waiting(self)
    cdef _abandon_batch(self, _Batch batch)
    cdef _fail_batch(self, _Batch batch, object error)
    cdef _cancel_batch(self, _Batch batch)
    cdef _deliver_entry(self, object entry, object value)
    cdef _fail_entry(self, object entry, object error)
    cdef _cancel_entry(self, object entry)
    cdef _detach(self, list cache_keys, list entries)
    cdef _schedule_cache_call(self, str operation, object argument)
