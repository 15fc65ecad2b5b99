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


cdef class DataLoader:
    cdef public object load_fn
    cdef public object max_batch_size
    cdef public bint cache
    cdef public object cache_map
    cdef public object cache_key_fn
    cdef public str name
    cdef object _loop
    cdef object _create_future
    cdef object _ready
    cdef bint _thread_check
    cdef dict _queue
    cdef dict _queue_keys
    cdef dict _in_flight
    cdef dict _more_waiters
    cdef object _dispatch_handle
    cdef Py_ssize_t _dispatch_seen
    cdef Py_ssize_t _dispatch_waits
    cdef set _batches
    cdef Py_ssize_t _batch_counter
    cdef bint _closing
    cdef list _shutdown_errors
    cdef bint _entered
    cdef object __weakref__

    cdef _bind(self, object loop)
    cdef object _loop_for_call(self)
    cdef object _cache_key(self, object key)
    cdef object _key_error(self, object cache_key, object key, object error)
    cdef _schedule_dispatch(self, object loop)
    cdef _dispatch(self)
    cdef object _take_queue(self)
    cdef _start_batches(self, list keys, list cache_keys, list entries)
    cdef bint _is_live(self, object entry) except -1
    cdef tuple _drop_dead_keys(self, dict queue)
    cdef _start_batch(self, list keys, list cache_keys, list entries)
    cdef _resolve(self, list keys, list cache_keys, list entries, object results)
    cdef _fail_entries(self, list cache_keys, list entries, object error)
    cdef _cancel_entries(self, list cache_keys, list entries)
    cdef _fail_entry(self, object entry, object error)
    cdef _cancel_entry(self, object entry)
    cdef _detach(self, list cache_keys, list entries)
