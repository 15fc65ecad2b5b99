"""The OpenTelemetry adapter driven through the instrumentation protocol by hand, with the real SDK.

Calls on_load / on_batch / enter / exit the way the core does, so the adapter is proven independently of the core.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags
from otel_helpers import (  # noqa: F401 -- fixtures
    BATCH_PREFIX,
    Telemetry,
    link_ids,
    make_telemetry,
    parent_id,
    restore_default,
    span_id,
    telemetry,
)

import dloader.instrumentation
from dloader import DataLoader
from dloader.opentelemetry import DataLoaderInstrumentor, OpenTelemetryInstrumentation, options_from_environment


async def fetch(keys: list[Any]) -> list[Any]:
    return keys


def users_loader() -> DataLoader[Any, Any]:
    return DataLoader(fetch, name="users")


def adapter(telemetry: Telemetry, **options: Any) -> OpenTelemetryInstrumentation:
    return OpenTelemetryInstrumentation(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **options
    )


def load_from(
    telemetry: Telemetry,
    instrumentation: Any,
    loader: Any,
    span_name: str | None,
    key: Any,
    many: bool = False,
) -> tuple[Any, asyncio.Future[Any]]:
    """on_load as a caller does it: inside a span named span_name (None: no span); returns (token, future)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if span_name is None:
        return instrumentation.on_load(loader, key, future, many), future
    with telemetry.tracer.start_as_current_span(span_name):
        return instrumentation.on_load(loader, key, future, many), future


def run_batch(
    instrumentation: Any,
    loader: Any,
    keys: list[Any],
    tokens: list[Any],
    *,
    error: BaseException | None = None,
    key_failures: int = 0,
    inside: Any = None,
) -> None:
    scope = instrumentation.on_batch(loader, list(keys), [token for token in tokens if token is not None])
    assert scope is not None
    scope.enter()
    try:
        if inside is not None:
            inside()
    finally:
        scope.exit(error, key_failures)


# ---------------------------------------------------------------- the batch span


async def test_batch_span_is_linked_to_every_caller_and_current_while_load_fn_runs(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    tokens = []
    for index in range(3):
        with telemetry.tracer.start_as_current_span(f"resolver {index}"):
            future = asyncio.get_running_loop().create_future()
            tokens.append(instrumentation.on_load(loader, index, future, False))
    # A token is the caller's OpenTelemetry context, holding its span.
    assert [trace.get_current_span(token).name for token in tokens] == ["resolver 0", "resolver 1", "resolver 2"]  # type: ignore[attr-defined]
    outside = trace.get_current_span()

    def load_fn_body() -> None:
        assert trace.get_current_span().get_span_context().span_id != outside.get_span_context().span_id
        with telemetry.tracer.start_as_current_span("SELECT users"):
            pass

    run_batch(instrumentation, loader, [0, 1, 2], tokens, inside=load_fn_body)
    assert trace.get_current_span() is outside  # exit() detached the batch span

    resolvers = {span.name: span for span in telemetry.spans("resolver")}
    (batch,) = telemetry.batch_spans()
    (select,) = telemetry.spans("SELECT")
    assert batch.name == f"{BATCH_PREFIX} users"
    assert batch.kind is trace.SpanKind.INTERNAL
    assert dict(batch.attributes or {}) == {
        "graphql.processing.type": "dataloader_batch",
        "graphql.dataloader.name": "users",
        "graphql.dataloader.batch.size": 3,
        "dloader.batch.key_failures": 0,
    }
    assert link_ids(batch) == [span_id(resolvers[f"resolver {index}"]) for index in range(3)]
    assert parent_id(batch) == span_id(resolvers["resolver 0"])  # the first caller
    assert batch.context is not None and batch.context.trace_id == resolvers["resolver 0"].context.trace_id  # type: ignore[union-attr]
    assert parent_id(select) == span_id(batch)
    assert batch.status.status_code is StatusCode.UNSET
    assert telemetry.ledger.unended() == []


async def test_parent_none_makes_a_root_span_with_links(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry, parent="none")
    loader = users_loader()
    with telemetry.tracer.start_as_current_span("resolver"):
        token = instrumentation.on_load(loader, 1, asyncio.get_running_loop().create_future(), False)
    run_batch(instrumentation, loader, [1], [token])
    (batch,) = telemetry.batch_spans()
    (resolver,) = telemetry.spans("resolver")
    assert batch.parent is None
    assert link_ids(batch) == [span_id(resolver)]


async def test_links_are_deduplicated_capped_and_the_size_stays_exact(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)  # max_links defaults to 128
    loader = users_loader()
    loop = asyncio.get_running_loop()
    tokens = []
    for index in range(1000):
        with telemetry.tracer.start_as_current_span(f"resolver {index}"):
            # Two loads from the same resolver: one link.
            tokens.append(instrumentation.on_load(loader, (index, "a"), loop.create_future(), False))
            tokens.append(instrumentation.on_load(loader, (index, "b"), loop.create_future(), False))
    keys = [key for index in range(1000) for key in ((index, "a"), (index, "b"))]
    run_batch(instrumentation, loader, keys, tokens)
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None
    assert batch.attributes["graphql.dataloader.batch.size"] == 2000
    assert len(batch.links) == 128
    assert len(set(link_ids(batch))) == 128
    assert batch.attributes["dloader.batch.links_dropped"] == 1000 - 128
    resolver_ids = [span_id(span) for span in telemetry.spans("resolver ")]
    assert link_ids(batch) == resolver_ids[:128]  # the first callers, in request order


async def test_a_smaller_max_links(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry, max_links=2)
    loader = users_loader()
    tokens = [load_from(telemetry, instrumentation, loader, f"resolver {index}", index)[0] for index in range(5)]
    run_batch(instrumentation, loader, list(range(5)), tokens)
    (batch,) = telemetry.batch_spans()
    assert len(batch.links) == 2
    assert batch.attributes is not None and batch.attributes["dloader.batch.links_dropped"] == 3


async def test_unsampled_callers_are_neither_linked_nor_the_parent(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    unsampled_context = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with trace.use_span(NonRecordingSpan(unsampled_context)):
        unsampled = instrumentation.on_load(loader, 1, asyncio.get_running_loop().create_future(), False)
    # Kept as a token, in case no caller is sampled.
    assert trace.get_current_span(unsampled).get_span_context() == unsampled_context
    with telemetry.tracer.start_as_current_span("sampled resolver"):
        sampled = instrumentation.on_load(loader, 2, asyncio.get_running_loop().create_future(), False)
    run_batch(instrumentation, loader, [1, 2], [unsampled, sampled])
    (batch,) = telemetry.batch_spans()  # the first caller was not sampled, the batch span is
    (resolver,) = telemetry.spans("sampled resolver")
    assert link_ids(batch) == [span_id(resolver)]
    assert parent_id(batch) == span_id(resolver)


async def test_only_unsampled_callers_make_an_unsampled_batch(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    unsampled_context = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with trace.use_span(NonRecordingSpan(unsampled_context)):
        unsampled = instrumentation.on_load(loader, 1, asyncio.get_running_loop().create_future(), False)
    run_batch(instrumentation, loader, [1], [unsampled])
    assert telemetry.batch_spans() == []  # the SDK's parent-based sampler follows the caller
    assert telemetry.ledger.unended() == []


# ---------------------------------------------------------------- no parent span


async def test_no_span_at_any_caller_means_no_span(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, None, 1)
    assert token is None
    run_batch(instrumentation, loader, [1], [token], inside=lambda: telemetry.tracer.start_span("in load_fn").end())
    assert telemetry.batch_spans() == []
    (inner,) = telemetry.spans("in load_fn")
    assert inner.parent is None  # nothing was made current
    # The batch metrics are recorded all the same.
    (size_point,) = telemetry.metric_points("dloader.batch.size")
    assert size_point.sum == 1 and size_point.count == 1


async def test_require_parent_span_false_makes_a_root_batch_span(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry, require_parent_span=False)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, None, 1)
    assert token is None
    run_batch(instrumentation, loader, [1], [token])
    (batch,) = telemetry.batch_spans()
    assert batch.parent is None and batch.links == ()


# ---------------------------------------------------------------- how a batch ends


async def test_load_fn_raising_sets_error_status_and_one_exception_event(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    run_batch(instrumentation, loader, [1], [token], error=LookupError("database is down"))
    (batch,) = telemetry.batch_spans()
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.status.description == "LookupError: database is down"
    assert batch.attributes is not None and batch.attributes["error.type"] == "LookupError"
    (event,) = batch.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "LookupError"
    assert event.attributes["exception.message"] == "database is down"


async def test_key_failures_are_counted_without_failing_the_span(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    run_batch(instrumentation, loader, [1, 2, 3], [token], key_failures=2)
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None and batch.attributes["dloader.batch.key_failures"] == 2
    assert batch.status.status_code is StatusCode.UNSET


async def test_a_cancelled_batch_is_marked_not_failed(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    run_batch(instrumentation, loader, [1], [token], error=asyncio.CancelledError())
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None and batch.attributes["dloader.batch.cancelled"] is True
    assert batch.status.status_code is StatusCode.UNSET
    assert batch.events == ()
    assert telemetry.ledger.unended() == []


async def test_keyboard_interrupt_ends_the_span_with_an_error(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    run_batch(instrumentation, loader, [1], [token], error=KeyboardInterrupt())
    (batch,) = telemetry.batch_spans()
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.attributes is not None and batch.attributes["error.type"] == "KeyboardInterrupt"


async def test_exit_without_enter_still_ends_the_span(telemetry: Telemetry) -> None:
    # A batch cancelled between on_batch and enter: exit alone must not leave the span open.
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    scope = instrumentation.on_batch(loader, [1], [token])
    assert scope is not None
    scope.exit(asyncio.CancelledError(), 0)
    assert len(telemetry.batch_spans()) == 1
    assert telemetry.ledger.unended() == []


# ---------------------------------------------------------------- keys


async def test_keys_are_opt_in_truncated_and_stringified_safely(telemetry: Telemetry) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    instrumentation = adapter(telemetry, record_keys=True, max_keys=3, max_key_length=16)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    run_batch(instrumentation, loader, [1, "a-very-long-key-indeed", Unprintable(), 4, 5], [token])
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None
    assert batch.attributes["graphql.dataloader.batch.keys"] == ("1", "a-very-long-key…", "<Unprintable>")
    assert batch.attributes["graphql.dataloader.batch.size"] == 5

    plain = adapter(telemetry)
    run_batch(plain, loader, [1], [token])
    assert "graphql.dataloader.batch.keys" not in (telemetry.batch_spans()[-1].attributes or {})


# ---------------------------------------------------------------- per-load spans


async def test_load_spans_end_with_the_callers_future(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry, load_spans=True)
    loader = users_loader()
    ok_token, ok_future = load_from(telemetry, instrumentation, loader, "resolver ok", 1)
    failed_token, failed_future = load_from(telemetry, instrumentation, loader, "resolver failed", 2)
    many_token, many_future = load_from(telemetry, instrumentation, loader, "resolver many", [3, 4], many=True)
    cancelled_token, cancelled_future = load_from(telemetry, instrumentation, loader, "resolver cancelled", 5)
    assert telemetry.spans("dloader.load") == []  # open until the futures are done
    run_batch(instrumentation, loader, [1, 2, 3, 4, 5], [ok_token, failed_token, many_token, cancelled_token])
    ok_future.set_result("one")
    failed_future.set_exception(KeyError(2))
    failed_future.exception()  # retrieved, as a caller would
    many_future.set_result(["three", "four"])
    cancelled_future.cancel()
    await asyncio.sleep(0)  # done callbacks run in the next loop iteration

    loads = {span.name: span for span in telemetry.spans("dloader.load")}
    assert sorted(loads) == ["dloader.load users", "dloader.load_many users"]
    load_spans = telemetry.spans("dloader.load users")
    assert len(load_spans) == 3
    by_parent = {parent_id(span): span for span in load_spans}
    resolvers = {span.name: span_id(span) for span in telemetry.spans("resolver")}
    assert by_parent[resolvers["resolver ok"]].status.status_code is StatusCode.UNSET
    failed = by_parent[resolvers["resolver failed"]]
    assert failed.status.status_code is StatusCode.ERROR and failed.events[0].name == "exception"
    cancelled = by_parent[resolvers["resolver cancelled"]]
    assert cancelled.attributes is not None and cancelled.attributes["dloader.load.cancelled"] is True
    many = loads["dloader.load_many users"]
    assert parent_id(many) == resolvers["resolver many"]
    assert many.attributes is not None and many.attributes["dloader.load.key_count"] == 2
    # The batch links to the load spans, which are the callers' children.
    (batch,) = telemetry.batch_spans()
    assert set(link_ids(batch)) == {span_id(span) for span in telemetry.spans("dloader.load")}
    assert telemetry.ledger.unended() == []


# ---------------------------------------------------------------- metrics


async def test_batch_metrics(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    run_batch(instrumentation, loader, [1, 2, 3], [token])
    run_batch(instrumentation, loader, [4], [token], error=ValueError("bad shape"))
    (size_point,) = telemetry.metric_points("dloader.batch.size")
    assert (size_point.count, size_point.sum) == (2, 4)
    assert dict(size_point.attributes) == {"graphql.dataloader.name": "users"}
    durations = {
        point.attributes.get("error.type"): point for point in telemetry.metric_points("dloader.batch.duration")
    }
    assert set(durations) == {None, "ValueError"}
    assert all(point.count == 1 and point.sum >= 0 for point in durations.values())


async def test_load_metrics_count_keys_by_outcome(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry, load_metrics=True)
    loader = users_loader()
    loop = asyncio.get_running_loop()
    hit = loop.create_future()
    hit.set_result("cached")
    instrumentation.on_load(loader, 1, hit, False)
    success, error, cancelled, many = (loop.create_future() for _ in range(4))
    instrumentation.on_load(loader, 2, success, False)
    instrumentation.on_load(loader, 3, error, False)
    instrumentation.on_load(loader, 4, cancelled, False)
    instrumentation.on_load(loader, [5, 6, 7], many, True)
    success.set_result("two")
    error.set_exception(KeyError(3))
    error.exception()
    cancelled.cancel()
    many.set_result(["five", KeyError(6), "seven"])  # load_many(return_exceptions=True)
    await asyncio.sleep(0)
    counts = {
        point.attributes["dloader.load.outcome"]: point.value for point in telemetry.metric_points("dloader.loads")
    }
    assert counts == {"hit": 1, "success": 3, "error": 2, "cancelled": 1}


# ---------------------------------------------------------------- options, the instrumentor, the default


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_links": -1}, ValueError, "max_links must be >= 0"),
        ({"max_links": "128"}, TypeError, "max_links must be an int"),
        ({"max_keys": 0}, ValueError, "max_keys must be >= 1"),
        ({"require_parent_span": 1}, TypeError, "require_parent_span must be True or False"),
        ({"parent": "last_caller"}, ValueError, "parent must be one of"),
        ({"key_to_str": "str"}, TypeError, "key_to_str must be callable"),
    ],
)
def test_bad_options_are_rejected_clearly(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        OpenTelemetryInstrumentation(**options)


def test_unknown_options_are_rejected() -> None:
    with pytest.raises(TypeError, match="record_key"):
        OpenTelemetryInstrumentation(record_key=True)  # type: ignore[call-arg]


class Recording:
    """A second, non-OpenTelemetry instrumentation: records what it is told, tokens are "caller-<key>"."""

    def __init__(self, fail_on_exit: bool = False) -> None:
        self.fail_on_exit = fail_on_exit
        self.events: list[Any] = []

    def on_load(self, loader: Any, key: Any, future: Any, many: bool) -> Any:
        return None if key == "untracked" else f"caller-{key}"

    def on_batch(self, loader: Any, keys: list[Any], tokens: list[Any]) -> Any:
        self.events.append(("batch", keys, tokens))
        return RecordingScope(self)


class RecordingScope:
    def __init__(self, owner: Recording) -> None:
        self.owner = owner

    def enter(self) -> None:
        self.owner.events.append(("enter", trace.get_current_span().get_span_context().is_valid))

    def exit(self, error: BaseException | None, key_failures: int) -> None:
        self.owner.events.append(("exit", error, key_failures))
        if self.owner.fail_on_exit:
            raise RuntimeError("a broken exit")


def test_the_instrumentor_sets_and_removes_the_process_default(telemetry: Telemetry, restore_default: None) -> None:
    dloader.instrumentation.set_default(None)
    instrumentor = DataLoaderInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, max_links=7)
    try:
        installed = dloader.instrumentation.get_default()
        assert isinstance(installed, OpenTelemetryInstrumentation)
        assert installed is instrumentor.installed
        assert installed.max_links == 7 and installed.active
    finally:
        instrumentor.uninstrument()
    assert dloader.instrumentation.get_default() is None
    assert not installed.active  # loaders created meanwhile go quiet
    assert instrumentor.installed is None


def test_the_instrumentor_combines_with_a_default_set_before(telemetry: Telemetry, restore_default: None) -> None:
    previous = Recording()
    dloader.instrumentation.set_default(previous)
    instrumentor = DataLoaderInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        combined = dloader.instrumentation.get_default()
        assert combined is not None and combined.parts == (previous, instrumentor.installed)  # type: ignore[attr-defined]
        assert repr(combined).startswith("combine(")
    finally:
        instrumentor.uninstrument()
    assert dloader.instrumentation.get_default() is previous


async def test_combined_instrumentations_each_get_their_own_tokens(telemetry: Telemetry) -> None:
    recording = Recording()
    combined = dloader.instrumentation.combine(recording, adapter(telemetry))
    loader = users_loader()
    tokens = [load_from(telemetry, combined, loader, f"resolver {key}", key)[0] for key in (1, 2)]
    untracked, _ = load_from(telemetry, combined, loader, None, "untracked")
    assert untracked is None  # no part had a token: nothing to keep
    run_batch(combined, loader, [1, 2, "untracked"], [*tokens, untracked])
    assert recording.events == [
        ("batch", [1, 2, "untracked"], ["caller-1", "caller-2"]),
        ("enter", False),  # entered first, before the batch span was made current
        ("exit", None, 0),
    ]
    (batch,) = telemetry.batch_spans()
    assert sorted(link_ids(batch)) == sorted(span_id(span) for span in telemetry.spans("resolver"))


async def test_a_combined_scope_exits_every_part_even_when_one_raises(telemetry: Telemetry) -> None:
    broken = Recording(fail_on_exit=True)
    combined = dloader.instrumentation.combine(adapter(telemetry), broken)
    loader = users_loader()
    token, _ = load_from(telemetry, combined, loader, "resolver", 1)
    with pytest.raises(RuntimeError, match="a broken exit"):
        run_batch(combined, loader, [1], [token])
    assert len(telemetry.batch_spans()) == 1  # the span was ended all the same
    assert trace.get_current_span() is trace.INVALID_SPAN  # and detached
    assert telemetry.ledger.unended() == []


def test_combine_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="one or more instrumentations"):
        dloader.instrumentation.combine()
    with pytest.raises(TypeError, match="one or more instrumentations"):
        dloader.instrumentation.combine(Recording(), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"combine\(\): .* lacks on_load and on_batch"):
        dloader.instrumentation.combine(object())  # type: ignore[arg-type]


def test_a_rejected_option_leaves_the_instrumentor_uninstrumented(restore_default: None) -> None:
    instrumentor = DataLoaderInstrumentor()
    with pytest.raises(ValueError, match="max_links"):
        instrumentor.instrument(max_links=-5)
    assert dloader.instrumentation.get_default() is None
    assert not instrumentor.is_instrumented_by_opentelemetry


async def test_an_uninstrumented_adapter_is_silent(telemetry: Telemetry) -> None:
    instrumentation = adapter(telemetry)
    instrumentation.active = False
    loader = users_loader()
    token, _ = load_from(telemetry, instrumentation, loader, "resolver", 1)
    assert token is None
    assert instrumentation.on_batch(loader, [1], []) is None


def test_the_entry_point_names_the_instrumentor() -> None:
    (entry_point,) = [
        entry_point
        for entry_point in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
        if entry_point.name == "dloader"
    ]
    assert entry_point.load() is DataLoaderInstrumentor


def test_set_default_checks_its_argument_and_returns_the_previous(restore_default: None) -> None:
    with pytest.raises(TypeError, match=r"set_default\(\): .* lacks on_load and on_batch"):
        dloader.instrumentation.set_default(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lacks on_batch"):
        dloader.instrumentation.set_default(type("OnlyLoad", (), {"on_load": lambda *args: None})())  # type: ignore[arg-type]
    instrumentation = OpenTelemetryInstrumentation()
    assert isinstance(instrumentation, dloader.instrumentation.Instrumentation)
    dloader.instrumentation.set_default(None)
    assert dloader.instrumentation.set_default(instrumentation) is None
    assert dloader.instrumentation.set_default(None) is instrumentation
    assert dloader.instrumentation.get_default() is None


def test_opentelemetry_instrument_installs_the_default(tmp_path: Path) -> None:
    command = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    if command is None:
        pytest.skip("opentelemetry-instrument is not installed next to this Python (extra: test)")
    app = tmp_path / "app.py"
    app.write_text(
        "import dloader.instrumentation\n"
        "default = dloader.instrumentation.get_default()\n"
        "print(type(default).__name__, getattr(default, 'max_links', None))\n"
    )
    env = dict(
        os.environ,
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_DLOADER_MAX_LINKS="7",  # options reach an instrumentor that gets no arguments
    )
    completed = subprocess.run(
        [command, sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "OpenTelemetryInstrumentation 7"

    # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS names the entry point: then nothing is installed.
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "dloader"
    completed = subprocess.run(
        [command, sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "NoneType None"


async def test_a_cache_hit_carries_no_token(telemetry: Telemetry) -> None:
    # An answered future joins no batch: the caller's span is not even looked up.
    instrumentation = adapter(telemetry)
    hit: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    hit.set_result("cached")
    with telemetry.tracer.start_as_current_span("resolver"):
        assert instrumentation.on_load(users_loader(), 1, hit, False) is None


def test_options_from_the_environment() -> None:
    environ = {
        "OTEL_PYTHON_DLOADER_RECORD_KEYS": "True",
        "OTEL_PYTHON_DLOADER_REQUIRE_PARENT_SPAN": "off",
        "OTEL_PYTHON_DLOADER_MAX_LINKS": " 32 ",
        "OTEL_PYTHON_DLOADER_PARENT": "none",
        "OTEL_PYTHON_DLOADER_LOAD_SPANS": "",  # empty: not set
        "OTEL_PYTHON_OTHER": "ignored",
    }
    assert options_from_environment(environ) == {
        "record_keys": True,
        "require_parent_span": False,
        "max_links": 32,
        "parent": "none",
    }
    with pytest.raises(ValueError, match=r"OTEL_PYTHON_DLOADER_LOAD_SPANS='maybe': expected true or false"):
        options_from_environment({"OTEL_PYTHON_DLOADER_LOAD_SPANS": "maybe"})
    with pytest.raises(ValueError, match=r"OTEL_PYTHON_DLOADER_MAX_KEYS='ten': expected an integer"):
        options_from_environment({"OTEL_PYTHON_DLOADER_MAX_KEYS": "ten"})


def test_instrument_arguments_win_over_the_environment(
    telemetry: Telemetry, restore_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    dloader.instrumentation.set_default(None)
    monkeypatch.setenv("OTEL_PYTHON_DLOADER_RECORD_KEYS", "true")
    monkeypatch.setenv("OTEL_PYTHON_DLOADER_MAX_LINKS", "32")
    instrumentor = DataLoaderInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, max_links=5)
    try:
        installed = instrumentor.installed
        assert installed is not None and installed.record_keys and installed.max_links == 5
    finally:
        instrumentor.uninstrument()


async def test_the_sdk_link_limit_applies_too_and_the_size_stays_exact() -> None:
    # OTEL_SPAN_LINK_COUNT_LIMIT (here SpanLimits) may be lower than max_links: the SDK drops the rest.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_links=10))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        instrumentation = OpenTelemetryInstrumentation(tracer_provider=provider)
        loader = users_loader()
        tracer = provider.get_tracer("callers")
        loop = asyncio.get_running_loop()
        tokens = []
        for index in range(50):
            with tracer.start_as_current_span(f"resolver {index}"):
                tokens.append(instrumentation.on_load(loader, index, loop.create_future(), False))
        run_batch(instrumentation, loader, list(range(50)), tokens)
        (batch,) = [span for span in exporter.get_finished_spans() if span.name.startswith(BATCH_PREFIX)]
        assert len(batch.links) == 10
        assert batch.dropped_links == 40
        assert batch.attributes is not None and batch.attributes["graphql.dataloader.batch.size"] == 50
    finally:
        provider.shutdown()
