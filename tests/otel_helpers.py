"""The real OpenTelemetry SDK wired for tests: an in-memory exporter, a metric reader, a started/ended ledger.

Shared by tests/test_opentelemetry_adapter.py and tests/test_opentelemetry.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed (extra: test)")

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dloader.instrumentation

BATCH_PREFIX = "GraphQL DataLoader Batch"


class Ledger(SpanProcessor):
    """Records the id of every span started and every span ended, to prove none is left open."""

    def __init__(self) -> None:
        self.started: dict[int, str] = {}
        self.ended: set[int] = set()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.ended.add(span.context.span_id)

    def unended(self) -> list[str]:
        return sorted(name for span_id, name in self.started.items() if span_id not in self.ended)


@dataclass
class Telemetry:
    """A TracerProvider and a MeterProvider of the SDK, and what they collected."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    ledger: Ledger
    tracer: Any = field(init=False)

    def __post_init__(self) -> None:
        self.tracer = self.tracer_provider.get_tracer("tests")

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name.startswith(prefix)]

    def batch_spans(self) -> list[ReadableSpan]:
        return self.spans(BATCH_PREFIX)

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def make_telemetry() -> Telemetry:
    ledger = Ledger()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(ledger)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return Telemetry(tracer_provider, meter_provider, exporter, reader, ledger)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def link_ids(span: ReadableSpan) -> list[int]:
    return [link.context.span_id for link in span.links]


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


# ---------------------------------------------------------------- fixtures, imported by the OpenTelemetry tests


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    collected = make_telemetry()
    yield collected
    collected.close()


@pytest.fixture
def restore_default() -> Iterator[None]:
    previous = dloader.instrumentation.get_default()
    yield
    dloader.instrumentation.set_default(previous)
