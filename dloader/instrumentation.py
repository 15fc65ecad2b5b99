"""The instrumentation hook: what a DataLoader reports at each load() and around each load_fn call.

Dependency-free; tracing adapters (``dloader.opentelemetry``, a Sentry or Datadog integration) are clients of it.

How it works
============

A loader reads its instrumentation once, when it is created: the ``instrumentation=`` argument
of ``DataLoader(...)`` when given (``None`` turns it off), else the process-wide default set with
:func:`set_default`. With none, the loader's hot path pays one pointer test.

With one, the loader calls:

1. :meth:`Instrumentation.on_load` in the **caller's** context, from every ``load()`` (``many=False``,
   ``key`` is the key) and every ``load_many()`` (``many=True``, ``key`` is the list of keys), after
   the arguments were validated, cache hits included. ``future`` is the future handed to the caller.
   Whatever it returns other than ``None`` (a *token*: typically the caller's current span) is kept
   with each key that this call queues, or joins while it is queued.
2. :meth:`Instrumentation.on_batch` in the batch task, right before each ``load_fn`` call (once per
   split batch with ``max_batch_size``), with the distinct keys of that call and the tokens of the
   calls waiting for them, in request order, one per call. It returns a :class:`BatchScope`, or
   ``None`` to observe nothing.
3. :meth:`BatchScope.enter` just before ``load_fn`` is called, in the batch task's context: context
   variables set there (the current span, a Sentry scope) are current while ``load_fn`` runs.
4. :meth:`BatchScope.exit` once, in the same context, after every waiter of the batch was answered,
   with what ``load_fn`` raised (or the ``TypeError``/``ValueError`` of a result of the wrong shape,
   ``CancelledError`` when the batch was cancelled, ``KeyboardInterrupt``...) or ``None``, and the
   number of keys that failed individually (``Exception`` results, keys missing from a mapping).

Hooks run on the loader's hot path: keep them cheap, return ``None`` when there is nothing to
record, and never raise (an error escaping a hook is a bug of the instrumentation, and the loader
does not promise what its callers see then).

A minimal instrumentation that logs the size of every batch and how it ended::

    import logging
    import time

    import dloader.instrumentation

    log = logging.getLogger("loaders")


    class LogBatches:
        def on_load(self, loader, key, future, many):
            return None  # nothing to carry from the callers to the batch

        def on_batch(self, loader, keys, tokens):
            return LoggedBatch(loader.name, len(keys))


    class LoggedBatch:
        def __init__(self, name, size):
            self.name, self.size, self.started = name, size, 0.0

        def enter(self):
            self.started = time.perf_counter()

        def exit(self, error, key_failures):
            elapsed_ms = (time.perf_counter() - self.started) * 1000
            log.info("%s: %d keys in %.1f ms, %d failed, error=%r",
                     self.name, self.size, elapsed_ms, key_failures, error)


    dloader.instrumentation.set_default(LogBatches())   # every loader created from now on

Several instrumentations (tracing and an error tracker, say) work together through
:func:`combine`; an instrumentor that finds a default already set combines with it.

A tracing integration (Sentry, Datadog) follows the same shape: ``on_load`` returns the caller's
current span (or ``None`` when there is none), ``on_batch`` starts a span linked to those tokens and
returns a scope whose ``enter`` makes it current and whose ``exit`` finishes it; see
``dloader.opentelemetry`` for a complete one.
"""

from __future__ import annotations

from asyncio import Future
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._loader_py import DataLoader

__all__ = ("BatchScope", "Instrumentation", "combine", "get_default", "set_default")


@runtime_checkable
class BatchScope(Protocol):
    """Observes one ``load_fn`` call: entered before it, exited once after its waiters were answered."""

    def enter(self) -> None:
        """Called in the batch task's context just before ``load_fn``; context variables set here stay
        current while ``load_fn`` runs (attach a span here)."""

    def exit(self, error: BaseException | None, key_failures: int) -> None:
        """Called once, in the same context, after every waiter of the batch was answered (detach and
        finish here).

        ``error`` is what ended the call abnormally: the exception ``load_fn`` raised, the
        ``TypeError``/``ValueError`` of a result of the wrong shape, ``asyncio.CancelledError`` when the
        batch was cancelled, a ``KeyboardInterrupt``...; ``None`` when ``load_fn`` returned a usable
        result. ``key_failures`` counts the keys that failed individually (an ``Exception`` instance as
        a result, a key missing from a returned mapping).
        """


@runtime_checkable
class Instrumentation(Protocol):
    """What a DataLoader calls when one is set; both methods may return ``None`` to stay cheap."""

    def on_load(self, loader: DataLoader[Any, Any], key: Any, future: Future[Any], many: bool) -> object | None:
        """Called in the caller's context by every ``load()`` and ``load_many()``, cache hits included.

        ``key`` is the key (``many=False``) or the list of keys (``many=True``); ``future`` is the future
        returned to the caller. A returned token other than ``None`` travels with each key this call
        queues (or joins while queued) to :meth:`on_batch`.
        """

    def on_batch(self, loader: DataLoader[Any, Any], keys: list[Any], tokens: list[Any]) -> BatchScope | None:
        """Called in the batch task right before each ``load_fn`` call (once per split batch).

        ``keys`` are the distinct keys of this call (a copy); ``tokens`` the non-``None`` tokens of the
        calls waiting for them, in request order, one per call (a ``load_many`` whose keys span two
        split batches appears in both). Return a :class:`BatchScope` to observe the call, or ``None``.
        """


# The process-wide default: read by every DataLoader created without an explicit instrumentation=.
# A plain module global: reading and rebinding one reference is atomic, also without the GIL.
_default: Instrumentation | None = None


def set_default(instrumentation: Instrumentation | None) -> Instrumentation | None:
    """Make ``instrumentation`` the default of every DataLoader created from now on (``None``: none).

    Loaders that already exist keep what they had. Returns the previous default, so that a caller can
    restore it. Instrumentors (``dloader.opentelemetry.DataLoaderInstrumentor``) call this.
    """
    global _default
    checked = check_instrumentation(instrumentation, "set_default()")
    previous = _default
    _default = checked
    return previous


def get_default() -> Instrumentation | None:
    """The instrumentation that new DataLoaders use when none is passed to them (``None``: none)."""
    return _default


def check_instrumentation(value: Any, where: str) -> Instrumentation | None:
    """Return ``value`` when it is ``None`` or implements the protocol, else raise a clear TypeError.

    Shared by :func:`set_default` and the DataLoader constructor's ``instrumentation=`` argument.
    """
    if value is None:
        return None
    missing = [name for name in ("on_load", "on_batch") if not callable(getattr(value, name, None))]
    if missing:
        raise TypeError(
            f"{where}: an instrumentation needs callable on_load() and on_batch() methods "
            f"(see dloader.instrumentation.Instrumentation); {value!r} lacks {' and '.join(missing)}"
        )
    return value  # type: ignore[no-any-return]


def combine(*instrumentations: Instrumentation) -> Instrumentation:
    """One instrumentation that calls each of ``instrumentations`` in turn, each with its own tokens.

    Scopes are entered in order and exited in reverse order, so context variables that each one
    sets and resets nest properly; every scope is exited even when another one's ``exit`` raised.
    """
    parts = tuple(check_instrumentation(part, "combine()") for part in instrumentations)
    if not parts or any(part is None for part in parts):
        raise TypeError("combine() needs one or more instrumentations (None is not one)")
    return _Combined(parts)  # type: ignore[arg-type]


class _Combined:
    """What :func:`combine` returns: a token is the tuple of the parts' tokens."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Instrumentation, ...]) -> None:
        self.parts = parts

    def __repr__(self) -> str:
        return f"combine({', '.join(map(repr, self.parts))})"

    def on_load(self, loader: DataLoader[Any, Any], key: Any, future: Future[Any], many: bool) -> object | None:
        tokens = tuple(part.on_load(loader, key, future, many) for part in self.parts)
        for token in tokens:
            if token is not None:
                return tokens
        return None

    def on_batch(self, loader: DataLoader[Any, Any], keys: list[Any], tokens: list[Any]) -> BatchScope | None:
        scopes = []
        for index, part in enumerate(self.parts):
            own_tokens = [token[index] for token in tokens if token[index] is not None]
            scope = part.on_batch(loader, list(keys), own_tokens)
            if scope is not None:
                scopes.append(scope)
        return _CombinedScope(scopes) if scopes else None


class _CombinedScope:
    __slots__ = ("scopes",)

    def __init__(self, scopes: list[BatchScope]) -> None:
        self.scopes = scopes

    def enter(self) -> None:
        for scope in self.scopes:
            scope.enter()

    def exit(self, error: BaseException | None, key_failures: int) -> None:
        self._exit(len(self.scopes) - 1, error, key_failures)

    def _exit(self, index: int, error: BaseException | None, key_failures: int) -> None:
        # Recursion through try/finally: each scope exits even if a later-entered one raised.
        if index < 0:
            return
        try:
            self.scopes[index].exit(error, key_failures)
        finally:
            self._exit(index - 1, error, key_failures)
