"""Every private asyncio name dloader uses, in one place, each behind a guard.

A future CPython that drops one of these breaks only the code path that needs it (which
then takes a documented slower route), never ``import dloader``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import sys
from collections.abc import Callable
from typing import Any

__all__ = ("NATIVE_EAGER_START", "future_factory", "get_running_loop", "ready_queue", "thread_id_of")


def _public_get_running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: ``asyncio.events._get_running_loop`` (CPython >= 3.7): the running loop or None, without
#: the exception that the public ``get_running_loop()`` raises when there is none. load()
#: calls it for every key, so the exception-free C version matters.
get_running_loop: Callable[[], asyncio.AbstractEventLoop | None] = (
    getattr(asyncio.events, "_get_running_loop", None) or _public_get_running_loop
)

#: ``asyncio.Task(..., eager_start=True)`` (CPython >= 3.12): the task's first step runs in
#: the constructor. dloader starts its own tasks so, when the application set no task
#: factory, so that no task of the loader is ever cancelled before it has run a step.
NATIVE_EAGER_START = sys.version_info >= (3, 12)


def ready_queue(loop: asyncio.AbstractEventLoop) -> Any:
    """asyncio's queue of ready callbacks (``BaseEventLoop._ready``, every CPython so far), or None.

    The dispatch reads it to tell whether anything else could still run (and queue keys)
    before the next I/O, and relies on asyncio appending due 0-delay timers behind the
    callbacks queued before them. uvloop exposes no queue (and turns a 0-delay timer into
    call_soon); None makes the dispatch use plain yields instead.
    """
    if isinstance(loop, asyncio.BaseEventLoop):
        ready = getattr(loop, "_ready", None)
        if isinstance(ready, collections.deque):
            return ready
    return None


def thread_id_of(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether load() may test "is this loop running here" by ``loop._thread_id``.

    Python 3.11's C ``_get_running_loop()`` makes a getpid() system call on every call (a
    third of a cached load); asyncio's loops record the thread running them in
    ``BaseEventLoop._thread_id`` (None when stopped), and the loop running in this thread is
    the running loop. Python 3.12+ made ``_get_running_loop()`` cheap, and other loops do
    not say, so elsewhere the exact check is kept.
    """
    return sys.version_info < (3, 12) and isinstance(loop, asyncio.BaseEventLoop) and hasattr(loop, "_thread_id")


def future_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Future[Any]]:
    """``loop.create_future``, or what it does, made cheaper to call: load() calls it per key.

    ``BaseEventLoop.create_future`` is ``return futures.Future(loop=self)`` (every CPython so
    far). Where a loop keeps that method, a partial of the same constructor makes the same
    future without a Python-level call (the compiled twin would pay a whole interpreter
    frame for it); a loop that overrides it (uvloop, others) keeps its own.
    """
    if type(loop).create_future is asyncio.BaseEventLoop.create_future:
        return functools.partial(asyncio.futures.Future, loop=loop)
    return loop.create_future
