"""OpenTelemetry for DataLoaders: one span per load_fn call, linked to every caller, and dloader.* metrics.

A thin client of ``dloader.instrumentation`` (extra ``dloader[otel]``: opentelemetry-api and -instrumentation).

Usage, or let ``opentelemetry-instrument`` do it (the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point as ``dloader``)::

    from dloader.opentelemetry import DataLoaderInstrumentor

    DataLoaderInstrumentor().instrument()   # every DataLoader created afterwards, of both classes

(``opentelemetry-instrument`` passes no options: ``OTEL_PYTHON_DLOADER_RECORD_KEYS=true`` and the
like set them, see :meth:`DataLoaderInstrumentor._instrument`.)

Spans (conventions of the GraphQL OpenTelemetry working group, ``graphql/otel-wg`` ``spec/spans.yaml``,
where they exist):

* one span per ``load_fn`` call (per split batch with ``max_batch_size``), named
  ``GraphQL DataLoader Batch {loader.name}``, kind INTERNAL, with ``graphql.processing.type =
  "dataloader_batch"``, ``graphql.dataloader.name`` and ``graphql.dataloader.batch.size`` (the number
  of distinct keys passed to ``load_fn``: dloader answers cache hits in ``load()``, so a batch holds
  misses only); with ``record_keys=True`` also ``graphql.dataloader.batch.keys`` (at most
  ``max_keys`` keys, each turned into text by ``key_to_str`` and cut to ``max_key_length``
  characters);
* its parent is the span that was current in the first caller of the batch when it called
  ``load()``, the first sampled one if any (``parent="first_caller"``, the default), or none
  (``parent="none"``: a root span); it is **linked** to the span that was current in each
  caller (deduplicated; sampled spans only; at most ``max_links``, the number left out in
  ``dloader.batch.links_dropped``);
* ``load_fn`` runs with the batch span current, so database spans become its children;
* ``dloader.batch.key_failures``: keys that failed individually (an ``Exception`` result, a key
  missing from a returned mapping);
* when ``load_fn`` raises (or returns a result of the wrong shape, or is interrupted by
  ``KeyboardInterrupt``): status ERROR, ``error.type`` and an exception event;
* a cancelled batch (every caller gave up, or the loader shut down) is not an error of the data
  source: the span ends with status UNSET and ``dloader.batch.cancelled = true``;
* with ``require_parent_span=True`` (the default, as Sentry does) a batch none of whose callers had
  a span gets no span, so loaders used at startup or in background jobs do not make root spans;
* with ``load_spans=True`` (off by default: per-load spans are the span-volume complaint of every
  tracker) each ``load()``/``load_many()`` also gets a span ``dloader.load {name}`` /
  ``dloader.load_many {name}``, a child of the caller's span, ended when the caller's future is
  done; the batch span then links to these load spans instead of the callers' spans.

Metrics, through ``meter_provider`` (default: the global one). No convention exists yet, hence the
``dloader.*`` names; every point carries ``graphql.dataloader.name``:

* ``dloader.batch.size`` (histogram, ``{key}``): distinct keys per ``load_fn`` call;
* ``dloader.batch.duration`` (histogram, ``s``): from right before ``load_fn`` is called until every
  waiter of the batch was answered; ``error.type`` is set when the call failed;
* ``dloader.loads`` (counter, ``{key}``), only with ``load_metrics=True`` (it costs a callback per
  load): keys asked for, by ``dloader.load.outcome``: ``hit`` (answered at once from the cache),
  ``success``, ``error``, ``cancelled``.
"""

from __future__ import annotations

import logging
import os
import time
from asyncio import CancelledError, Future
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace

# mypy (2.4, opentelemetry-instrumentation 0.66b2) reports the class as missing from its module
# although it is defined there; it is typed as Any, hence also the ignore on the subclass.
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from . import instrumentation as _instrumentation

if TYPE_CHECKING:
    from ._loader_py import DataLoader

__all__ = ("DataLoaderInstrumentor", "OpenTelemetryInstrumentation", "options_from_environment")

_log = logging.getLogger(__name__)

BATCH_SPAN_PREFIX: Final = "GraphQL DataLoader Batch"
PROCESSING_TYPE: Final = "graphql.processing.type"
LOADER_NAME: Final = "graphql.dataloader.name"
BATCH_SIZE: Final = "graphql.dataloader.batch.size"
BATCH_KEYS: Final = "graphql.dataloader.batch.keys"
KEY_FAILURES: Final = "dloader.batch.key_failures"
LINKS_DROPPED: Final = "dloader.batch.links_dropped"
CANCELLED: Final = "dloader.batch.cancelled"
LOAD_KEY_COUNT: Final = "dloader.load.key_count"
LOAD_CANCELLED: Final = "dloader.load.cancelled"
LOAD_OUTCOME: Final = "dloader.load.outcome"
ERROR_TYPE: Final = "error.type"

#: Bucket advice for dloader.batch.duration, in seconds (the SDK's default buckets suit milliseconds).
DURATION_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Bucket advice for dloader.batch.size, in keys.
SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

_PARENT_POLICIES: Final = ("first_caller", "none")
# Bound once: on_load runs for every load() of every instrumented loader.
_get_current_context = otel_context.get_current
_EMPTY_CONTEXT: Final = otel_context.Context()


def _version() -> str:
    from . import __version__

    return __version__


def _error_type(error: BaseException) -> str:
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class OpenTelemetryInstrumentation:
    """The :class:`dloader.instrumentation.Instrumentation` that emits the spans and metrics above.

    :class:`DataLoaderInstrumentor` makes one and sets it as the process-wide default; one can also be
    passed to a single loader with ``DataLoader(..., instrumentation=OpenTelemetryInstrumentation())``.
    Arguments as for :meth:`DataLoaderInstrumentor.instrument`. Its tokens are the callers'
    OpenTelemetry contexts (with ``load_spans=True``, the load spans' span contexts).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        require_parent_span: bool = True,
        parent: str = "first_caller",
        max_links: int = 128,
        record_keys: bool = False,
        max_keys: int = 10,
        max_key_length: int = 128,
        key_to_str: Callable[[Any], str] = str,
        load_spans: bool = False,
        load_metrics: bool = False,
    ) -> None:
        for flag_name, flag in (
            ("require_parent_span", require_parent_span),
            ("record_keys", record_keys),
            ("load_spans", load_spans),
            ("load_metrics", load_metrics),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"dloader.opentelemetry: {flag_name} must be True or False, not {flag!r}")
        for count_name, count, lowest in (
            ("max_links", max_links, 0),
            ("max_keys", max_keys, 1),
            ("max_key_length", max_key_length, 1),
        ):
            if not isinstance(count, int) or isinstance(count, bool):
                raise TypeError(f"dloader.opentelemetry: {count_name} must be an int, not {count!r}")
            if count < lowest:
                raise ValueError(f"dloader.opentelemetry: {count_name} must be >= {lowest}, not {count!r}")
        if parent not in _PARENT_POLICIES:
            raise ValueError(f"dloader.opentelemetry: parent must be one of {_PARENT_POLICIES}, not {parent!r}")
        if not callable(key_to_str):
            raise TypeError(f"dloader.opentelemetry: key_to_str must be callable, not {key_to_str!r}")
        self.require_parent_span = require_parent_span
        self.parent_is_first_caller = parent == "first_caller"
        self.max_links = max_links
        self.record_keys = record_keys
        self.max_keys = max_keys
        self.max_key_length = max_key_length
        self.key_to_str = key_to_str
        self.load_spans = load_spans
        self.load_metrics = load_metrics
        #: False once the instrumentor uninstrumented: loaders created before keep this object and
        #: must go quiet, since a compiled loader cannot be patched after the fact.
        self.active = True
        self.tracer = trace.get_tracer(__name__, _version(), tracer_provider)
        meter = metrics.get_meter(__name__, _version(), meter_provider)
        self.batch_size = meter.create_histogram(
            "dloader.batch.size",
            unit="{key}",
            description="Distinct keys passed to one load_fn call.",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self.batch_duration = meter.create_histogram(
            "dloader.batch.duration",
            unit="s",
            description="Time from a load_fn call until every waiter of its batch was answered.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.loads = meter.create_counter(
            "dloader.loads", unit="{key}", description="Keys asked for through load() and load_many(), by outcome."
        )

    # ------------------------------------------------------------ the Instrumentation protocol

    def on_load(self, loader: DataLoader[Any, Any], key: Any, future: Future[Any], many: bool) -> object | None:
        if not self.active:
            return None
        if self.load_metrics:
            self._count_load(loader.name, key, future, many)
        if self.load_spans:
            caller = trace.get_current_span().get_span_context()
            if not caller.is_valid and self.require_parent_span:
                return None
            return self._start_load_span(loader.name, key, future, many)
        if future.done():  # a cache hit: no batch will carry a token
            return None
        # The caller's whole context, not its span: reading the context costs a fraction of finding
        # the span in it, which on_batch does once per distinct context instead of once per load.
        caller_context = _get_current_context()
        return caller_context if caller_context else None  # empty: no span (outside any request)

    def on_batch(self, loader: DataLoader[Any, Any], keys: list[Any], tokens: list[Any]) -> _BatchScope | None:
        if not self.active:
            return None
        span = None
        try:
            callers = _caller_span_contexts(tokens)
            if callers or not self.require_parent_span:
                span = self._start_batch_span(loader.name, keys, callers)
        except Exception:  # an instrumentation must not break the loader
            _log.exception("dloader.opentelemetry: could not start the batch span of %r", loader.name)
        return _BatchScope(self, loader.name, len(keys), span)

    # ------------------------------------------------------------ spans

    def _start_batch_span(self, name: str, keys: list[Any], callers: list[trace.SpanContext]) -> trace.Span:
        links: list[Link] = []
        dropped = 0
        first_sampled = None
        for span_context in callers:
            # Links to spans a sampler dropped lead nowhere (they are never exported).
            if not span_context.trace_flags.sampled:
                continue
            if first_sampled is None:
                first_sampled = span_context
            if len(links) < self.max_links:
                links.append(Link(span_context))
            else:
                dropped += 1
        attributes: dict[str, Any] = {
            PROCESSING_TYPE: "dataloader_batch",
            LOADER_NAME: name,
            BATCH_SIZE: len(keys),
        }
        if dropped:
            attributes[LINKS_DROPPED] = dropped
        if self.record_keys:
            attributes[BATCH_KEYS] = [self._key_text(key) for key in keys[: self.max_keys]]
        if callers and self.parent_is_first_caller:
            # The first sampled caller: a parent-based sampler would drop the batch under an unsampled one.
            first = callers[0] if first_sampled is None else first_sampled
            parent = trace.set_span_in_context(trace.NonRecordingSpan(first), _EMPTY_CONTEXT)
        else:
            parent = _EMPTY_CONTEXT
        return self.tracer.start_span(
            f"{BATCH_SPAN_PREFIX} {name}", parent, SpanKind.INTERNAL, attributes=attributes, links=links
        )

    def _key_text(self, key: Any) -> str:
        try:
            text = self.key_to_str(key)
            if not isinstance(text, str):
                text = str(text)
        except Exception:
            text = f"<{type(key).__name__}>"
        return text if len(text) <= self.max_key_length else text[: self.max_key_length - 1] + "…"

    def _start_load_span(self, name: str, key: Any, future: Future[Any], many: bool) -> trace.SpanContext:
        attributes: dict[str, Any] = {LOADER_NAME: name}
        if many:
            attributes[LOAD_KEY_COUNT] = len(key)
        span = self.tracer.start_span(
            f"dloader.load_many {name}" if many else f"dloader.load {name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        future.add_done_callback(partial(_end_load_span, span))
        return span.get_span_context()

    # ------------------------------------------------------------ metrics

    def _count_load(self, name: str, key: Any, future: Future[Any], many: bool) -> None:
        count = len(key) if many else 1
        if future.done() and not future.cancelled() and future.exception() is None:
            self.loads.add(count, {LOADER_NAME: name, LOAD_OUTCOME: "hit"})
        else:
            future.add_done_callback(partial(self._count_outcome, name, count))

    def _count_outcome(self, name: str, count: int, future: Future[Any]) -> None:
        if future.cancelled():
            outcome = "cancelled"
        elif future.exception() is not None:
            outcome = "error"
        else:
            outcome = "success"
            results = future.result()
            if count > 1 and type(results) is list:  # load_many(return_exceptions=True): count per key
                failed = sum(1 for result in results if isinstance(result, BaseException))
                if failed:
                    self.loads.add(failed, {LOADER_NAME: name, LOAD_OUTCOME: "error"})
                    count -= failed
        if count:
            self.loads.add(count, {LOADER_NAME: name, LOAD_OUTCOME: outcome})


def _caller_span_contexts(tokens: list[Any]) -> list[trace.SpanContext]:
    """The distinct valid span contexts behind on_load's tokens (contexts or load spans), in order."""
    found: list[trace.SpanContext] = []
    seen: set[int] = set()
    previous = None
    for token in tokens:
        if token is previous:  # consecutive loads from one caller share its context object
            continue
        previous = token
        span_context = token if type(token) is trace.SpanContext else trace.get_current_span(token).get_span_context()
        if span_context.is_valid and span_context.span_id not in seen:
            seen.add(span_context.span_id)
            found.append(span_context)
    return found


def _end_load_span(span: trace.Span, future: Future[Any]) -> None:
    if future.cancelled():
        span.set_attribute(LOAD_CANCELLED, True)
    else:
        error = future.exception()
        if error is not None:
            span.record_exception(error)
            span.set_attribute(ERROR_TYPE, _error_type(error))
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


class _BatchScope:
    """One load_fn call: makes its span current while load_fn runs, then ends it and records metrics."""

    __slots__ = ("_attach_token", "_instrumentation", "_name", "_size", "_span", "_started")

    def __init__(self, instrumentation: OpenTelemetryInstrumentation, name: str, size: int, span: Any) -> None:
        self._instrumentation = instrumentation
        self._name = name
        self._size = size
        self._span: trace.Span | None = span
        self._attach_token: object | None = None
        self._started = time.perf_counter()

    def enter(self) -> None:
        self._started = time.perf_counter()
        if self._span is not None:
            self._attach_token = otel_context.attach(trace.set_span_in_context(self._span))

    def exit(self, error: BaseException | None, key_failures: int) -> None:
        elapsed = time.perf_counter() - self._started
        span = self._span
        try:
            if self._attach_token is not None:
                otel_context.detach(self._attach_token)  # type: ignore[arg-type]
                self._attach_token = None
            if span is not None:
                span.set_attribute(KEY_FAILURES, key_failures)
                if isinstance(error, CancelledError):
                    span.set_attribute(CANCELLED, True)
                elif error is not None:
                    span.record_exception(error, escaped=True)
                    span.set_attribute(ERROR_TYPE, _error_type(error))
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            instrumentation = self._instrumentation
            attributes: dict[str, Any] = {LOADER_NAME: self._name}
            instrumentation.batch_size.record(self._size, attributes)
            if error is not None:
                attributes = {LOADER_NAME: self._name, ERROR_TYPE: _error_type(error)}
            instrumentation.batch_duration.record(elapsed, attributes)
        finally:
            if span is not None:
                span.end()  # whatever happened above: a started span is always ended
            self._span = None


#: The options that ``OTEL_PYTHON_DLOADER_<NAME>`` environment variables may set, and their types.
ENVIRONMENT_OPTIONS: Final = {
    "require_parent_span": bool,
    "parent": str,
    "max_links": int,
    "record_keys": bool,
    "max_keys": int,
    "max_key_length": int,
    "load_spans": bool,
    "load_metrics": bool,
}
_TRUE: Final = ("true", "1", "yes", "on")
_FALSE: Final = ("false", "0", "no", "off")


def options_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The instrumentor's options set by ``OTEL_PYTHON_DLOADER_<NAME>`` variables; a bad value is a ValueError."""
    environ = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    for name, kind in ENVIRONMENT_OPTIONS.items():
        variable = f"OTEL_PYTHON_DLOADER_{name.upper()}"
        raw = environ.get(variable)
        if raw is None or not raw.strip():
            continue
        text = raw.strip()
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"{variable}={raw!r}: expected true or false")
            options[name] = text.lower() in _TRUE
        elif kind is int:
            try:
                options[name] = int(text)
            except ValueError:
                raise ValueError(f"{variable}={raw!r}: expected an integer") from None
        else:
            options[name] = text
    return options


class DataLoaderInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments every DataLoader created after :meth:`instrument`, of both classes.

    Compiled loaders cannot be patched, so this sets the process-wide default instrumentation
    (``dloader.instrumentation.set_default``) that each loader reads when it is created;
    :meth:`uninstrument` removes it and silences the loaders created meanwhile.
    """

    _installed: OpenTelemetryInstrumentation | None = None
    _default: _instrumentation.Instrumentation | None = None  # what instrument() set: ours, maybe combined
    _previous: _instrumentation.Instrumentation | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        # The instrumentor ships inside dloader: the instrumented library is always there.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        """Options (all keyword, all optional):

        ``tracer_provider``, ``meter_provider``: default the global ones.
        ``require_parent_span=True``: no batch span unless some caller had a current span.
        ``parent="first_caller"``: the batch span's parent; ``"none"`` makes it a root span with links.
        ``max_links=128``: links per batch span (the SDK's default span link limit is 128 too).
        ``record_keys=False``, ``max_keys=10``, ``max_key_length=128``, ``key_to_str=str``: the
        opt-in ``graphql.dataloader.batch.keys`` attribute (keys may be personal data).
        ``load_spans=False``: a span per ``load()``/``load_many()`` call.
        ``load_metrics=False``: the ``dloader.loads`` counter (a callback per load).

        Under ``opentelemetry-instrument``, which passes no options, the environment sets them:
        ``OTEL_PYTHON_DLOADER_`` followed by the option's name in capitals (``..._RECORD_KEYS=true``,
        ``..._MAX_LINKS=32``, ``..._PARENT=none``); an option passed here wins over its variable.

        A default instrumentation set before (an error tracker's, say) keeps working: the new
        default combines both (``dloader.instrumentation.combine``).
        """
        instrumentation = OpenTelemetryInstrumentation(**{**options_from_environment(), **kwargs})
        previous = _instrumentation.get_default()
        default = instrumentation if previous is None else _instrumentation.combine(previous, instrumentation)
        _instrumentation.set_default(default)
        self._installed = instrumentation
        self._default = default
        self._previous = previous

    def _uninstrument(self, **kwargs: Any) -> None:
        installed = self._installed
        if installed is None:
            return
        installed.active = False
        # Put back what was there before, unless someone replaced the default since.
        if _instrumentation.get_default() is self._default:
            _instrumentation.set_default(self._previous)
        self._installed = None
        self._default = None
        self._previous = None

    @property
    def installed(self) -> OpenTelemetryInstrumentation | None:
        """The instrumentation set by :meth:`instrument`, while instrumented."""
        return self._installed
