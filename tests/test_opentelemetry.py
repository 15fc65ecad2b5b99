"""Batch spans from real loaders, both twins, both loops: strawberry and graphql-core over SQLite, limits, failures.

Real SDK (TracerProvider, InMemorySpanExporter); subprocesses for KeyboardInterrupt and opentelemetry-instrument.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import Any

import pytest

# Skip, not error, where the SDK is missing: before anything imports OpenTelemetry.
pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed (extra: test)")

from opentelemetry.trace import StatusCode
from otel_helpers import Telemetry, link_ids, make_telemetry, parent_id, restore_default, span_id, telemetry  # noqa: F401 -- fixtures

import dloader
import dloader.instrumentation
from dloader.opentelemetry import DataLoaderInstrumentor, OpenTelemetryInstrumentation

try:
    import strawberry
    from strawberry.extensions.tracing import OpenTelemetryExtension
except ImportError:  # the strawberry test skips
    strawberry = None  # type: ignore[assignment]

aiosqlite = pytest.importorskip("aiosqlite", reason="aiosqlite is not installed (extra: test)")


def traced(telemetry: Telemetry, **options: Any) -> OpenTelemetryInstrumentation:
    return OpenTelemetryInstrumentation(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **options
    )


async def echo(keys: list[Any]) -> list[Any]:
    return [f"value-{key}" for key in keys]


# ---------------------------------------------------------------- a small library in SQLite


async def create_library(connection: Any, books: int = 50, authors: int = 20, countries: int = 3) -> None:
    """Books 1..books written by authors 1..10 (round robin); authors 11..20 only review (graphql-core test)."""
    await connection.executescript(
        """
        CREATE TABLE country (code TEXT PRIMARY KEY, name TEXT);
        CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT, country_code TEXT);
        CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER);
        """
    )
    await connection.executemany(
        "INSERT INTO country VALUES (?, ?)", [(f"C{index}", f"Country {index}") for index in range(countries)]
    )
    await connection.executemany(
        "INSERT INTO author VALUES (?, ?, ?)",
        [(index, f"Author {index}", f"C{index % countries}") for index in range(1, authors + 1)],
    )
    await connection.executemany(
        "INSERT INTO book VALUES (?, ?, ?)",
        [(index, f"Book {index}", index % 10 + 1) for index in range(1, books + 1)],
    )
    await connection.commit()


class Library:
    """Per-request loaders over one SQLite connection; each load_fn opens a span around its SELECT."""

    def __init__(self, connection: Any, loader_cls: type, telemetry: Telemetry) -> None:
        self.connection = connection
        self.tracer = telemetry.tracer
        self.authors = loader_cls(partial(self.select, "author", "id"), name="authors")
        self.countries = loader_cls(partial(self.select, "country", "code"), name="countries")

    async def select(self, table: str, column: str, keys: list[Any]) -> list[Any]:
        with self.tracer.start_as_current_span(f"SELECT {table}") as span:
            span.set_attribute("db.system.name", "sqlite")
            placeholders = ", ".join("?" for _ in keys)
            cursor = await self.connection.execute(f"SELECT * FROM {table} WHERE {column} IN ({placeholders})", keys)
            rows = {row[0]: row for row in await cursor.fetchall()}
        return [rows.get(key, KeyError(key)) for key in keys]


@pytest.fixture
async def connection() -> Any:
    async with aiosqlite.connect(":memory:") as opened:
        await create_library(opened)
        yield opened


# ---------------------------------------------------------------- strawberry + OpenTelemetryExtension

if strawberry is not None:

    @strawberry.type
    class Country:
        code: str
        name: str

    @strawberry.type
    class Author:
        id: int
        name: str
        country_code: strawberry.Private[str]

        @strawberry.field
        async def country(self, info: strawberry.Info) -> Country:
            code, name = await info.context["library"].countries.load(self.country_code)
            return Country(code=code, name=name)

    @strawberry.type
    class Book:
        id: int
        title: str
        author_id: strawberry.Private[int]

        @strawberry.field
        async def author(self, info: strawberry.Info) -> Author:
            author_id, name, country_code = await info.context["library"].authors.load(self.author_id)
            return Author(id=author_id, name=name, country_code=country_code)

    @strawberry.type
    class Query:
        @strawberry.field
        async def books(self, info: strawberry.Info) -> list[Book]:
            cursor = await info.context["library"].connection.execute("SELECT id, title, author_id FROM book")
            return [Book(id=row[0], title=row[1], author_id=row[2]) for row in await cursor.fetchall()]


async def test_strawberry_one_linked_batch_span_per_loader_per_level(
    loader_cls: type, telemetry: Telemetry, connection: Any, restore_default: None
) -> None:
    if strawberry is None:
        pytest.skip("strawberry-graphql is not installed (extra: test)")
    extension = partial(OpenTelemetryExtension, tracer_provider=telemetry.tracer_provider)
    schema = strawberry.Schema(query=Query, extensions=[extension])
    dloader.instrumentation.set_default(traced(telemetry))  # as DataLoaderInstrumentor does
    query = "query Library { books { title author { name country { name } } } }"

    for request in range(2):  # per-request loaders: each request has its own trace and batches
        telemetry.exporter.clear()
        result = await schema.execute(query, context_value={"library": Library(connection, loader_cls, telemetry)})
        assert result.errors is None, result.errors
        assert len(result.data["books"]) == 50  # type: ignore[index]

        (operation,) = telemetry.spans("GraphQL Query")
        assert operation.context is not None
        trace_id = operation.context.trace_id
        for loader_name, field_name, table, distinct_keys in (
            ("authors", "author", "author", 10),
            ("countries", "country", "country", 3),
        ):
            (batch,) = telemetry.spans(f"GraphQL DataLoader Batch {loader_name}")
            resolvers = telemetry.spans(f"GraphQL Resolving: {field_name}")
            assert len(resolvers) == 50, (request, field_name)
            assert batch.attributes is not None
            assert batch.attributes["graphql.dataloader.batch.size"] == distinct_keys
            assert batch.attributes["graphql.processing.type"] == "dataloader_batch"
            assert batch.attributes["graphql.dataloader.name"] == loader_name
            # The links are exactly the resolver spans that called load().
            assert sorted(link_ids(batch)) == sorted(span_id(span) for span in resolvers)
            assert parent_id(batch) in {span_id(span) for span in resolvers}
            assert batch.context is not None and batch.context.trace_id == trace_id
            (select,) = telemetry.spans(f"SELECT {table}")
            assert parent_id(select) == span_id(batch)
        assert telemetry.ledger.unended() == []


# ---------------------------------------------------------------- graphql-core, async and sync resolvers


async def test_graphql_core_permission_checks_and_sync_resolvers(
    loader_cls: type, telemetry: Telemetry, connection: Any
) -> None:
    graphql = pytest.importorskip("graphql")
    schema = graphql.build_schema(
        """
        type Author { name: String! }
        type Book { id: Int!, author: Author, reviewer: Author }
        type Query { books: [Book!]! }
        """
    )
    instrumentation = traced(telemetry, record_keys=True, max_keys=20)
    tracer = telemetry.tracer
    library = Library(connection, partial(loader_cls, instrumentation=instrumentation), telemetry)
    permission_checks = 0

    async def may_read(book_id: int) -> bool:
        nonlocal permission_checks
        await asyncio.sleep(0)  # an awaited check (a session lookup) before the load
        permission_checks += 1
        return True

    async def resolve_author(book: tuple[int, int], info: Any) -> Any:
        with tracer.start_as_current_span(f"resolve Book.author {book[0]}"):
            assert await may_read(book[0])
            return await library.authors.load(book[1])

    def resolve_reviewer(book: tuple[int, int], info: Any) -> Any:
        # A sync resolver returning the loader's future itself; graphql-core awaits it.
        with tracer.start_as_current_span(f"resolve Book.reviewer {book[0]}"):
            return library.authors.load(book[1] + 10)  # reviewers 11..20: keys distinct from the authors'

    schema.query_type.fields["books"].resolve = lambda root, info: [(index, index) for index in range(1, 11)]
    schema.get_type("Book").fields["author"].resolve = resolve_author
    schema.get_type("Book").fields["reviewer"].resolve = resolve_reviewer
    schema.get_type("Book").fields["id"].resolve = lambda book, info: book[0]
    schema.get_type("Author").fields["name"].resolve = lambda row, info: row[1]
    result = await graphql.graphql(schema, "{ books { id author { name } reviewer { name } } }")
    assert result.errors is None, result.errors
    assert result.data["books"][0] == {"id": 1, "author": {"name": "Author 1"}, "reviewer": {"name": "Author 11"}}
    assert permission_checks == 10

    # Whatever the dispatch made of it (one load_fn call per level is the core's aim), every batch
    # links exactly the resolvers whose keys it loaded: sync ones and those that awaited first.
    resolvers = {span.name: span_id(span) for span in telemetry.spans("resolve Book.")}
    assert len(resolvers) == 20
    batches = telemetry.batch_spans()
    linked: list[int] = []
    for batch in batches:
        assert batch.attributes is not None
        keys = [int(key) for key in batch.attributes["graphql.dataloader.batch.keys"]]  # type: ignore[union-attr]
        assert batch.attributes["graphql.dataloader.batch.size"] == len(keys)
        callers = {
            resolvers[f"resolve Book.author {key}" if key <= 10 else f"resolve Book.reviewer {key - 10}"]
            for key in keys
        }
        assert sorted(link_ids(batch)) == sorted(callers)
        assert parent_id(batch) in callers
        assert batch.attributes["dloader.batch.key_failures"] == 0
        assert batch.status.status_code is StatusCode.UNSET
        linked.extend(link_ids(batch))
    assert sorted(linked) == sorted(resolvers.values())  # each resolver linked once, by its batch
    selects = telemetry.spans("SELECT author")
    assert len(selects) == len(batches)
    assert {parent_id(select) for select in selects} == {span_id(batch) for batch in batches}
    assert telemetry.ledger.unended() == []


# ---------------------------------------------------------------- limits and split batches


async def test_a_thousand_callers_links_capped_size_exact(loader_cls: type, telemetry: Telemetry) -> None:
    loader = loader_cls(echo, name="things", instrumentation=traced(telemetry))

    async def caller(key: int) -> Any:
        with telemetry.tracer.start_as_current_span(f"caller {key}"):
            return await loader.load(key)

    values = await asyncio.gather(*(caller(key) for key in range(1000)))
    assert values == [f"value-{key}" for key in range(1000)]
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None
    assert batch.attributes["graphql.dataloader.batch.size"] == 1000
    assert len(batch.links) == 128
    assert batch.attributes["dloader.batch.links_dropped"] == 1000 - 128
    callers = {span_id(span) for span in telemetry.spans("caller ")}
    assert set(link_ids(batch)) <= callers


async def test_split_batches_get_a_span_each_linked_to_their_own_callers(
    loader_cls: type, telemetry: Telemetry
) -> None:
    loader = loader_cls(echo, name="things", max_batch_size=4, instrumentation=traced(telemetry))

    async def caller(keys: list[int]) -> Any:
        with telemetry.tracer.start_as_current_span(f"caller {keys}"):
            return await loader.load_many(keys)

    # Three callers, ten keys: batches [0..3], [4..7], [8, 9]; the middle caller spans two of them.
    groups = [[0, 1, 2], [3, 4, 5, 6, 7, 8], [9]]
    await asyncio.gather(*(caller(keys) for keys in groups))
    batches = sorted(telemetry.batch_spans(), key=lambda span: span.start_time or 0)
    assert [span.attributes["graphql.dataloader.batch.size"] for span in batches] == [4, 4, 2]  # type: ignore[index]
    caller_ids = {span.name: span_id(span) for span in telemetry.spans("caller ")}
    first, middle, last = (caller_ids[f"caller {keys}"] for keys in groups)
    assert [link_ids(span) for span in batches] == [[first, middle], [middle], [middle, last]]


# ---------------------------------------------------------------- no parent span, the default, uninstrument


async def test_no_parent_span_no_spans(loader_cls: type, telemetry: Telemetry) -> None:
    loader = loader_cls(echo, name="things", instrumentation=traced(telemetry))
    assert await loader.load_many([1, 2, 3]) == ["value-1", "value-2", "value-3"]
    assert telemetry.exporter.get_finished_spans() == ()
    (size,) = telemetry.metric_points("dloader.batch.size")  # metrics need no span
    assert (size.count, size.sum) == (1, 3)


async def test_the_instrumentor_reaches_loaders_of_both_classes(
    loader_cls: type, telemetry: Telemetry, restore_default: None
) -> None:
    instrumentor = DataLoaderInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        instrumented = loader_cls(echo, name="instrumented")
        opted_out = loader_cls(echo, name="opted-out", instrumentation=None)
        with telemetry.tracer.start_as_current_span("request"):
            await asyncio.gather(instrumented.load(1), opted_out.load(1))
        assert [span.name for span in telemetry.batch_spans()] == ["GraphQL DataLoader Batch instrumented"]
    finally:
        instrumentor.uninstrument()
    telemetry.exporter.clear()
    with telemetry.tracer.start_as_current_span("request"):
        await instrumented.load(2)  # created while instrumented: silenced by uninstrument()
        await loader_cls(echo, name="after").load(3)  # created after: no default any more
    assert telemetry.batch_spans() == []


# ---------------------------------------------------------------- failures and cancellation


async def test_load_fn_raising_marks_the_span(loader_cls: type, telemetry: Telemetry) -> None:
    async def broken(keys: list[Any]) -> list[Any]:
        raise ConnectionError("database is down")

    loader = loader_cls(broken, name="broken", instrumentation=traced(telemetry))
    with telemetry.tracer.start_as_current_span("request"), pytest.raises(ConnectionError):
        await loader.load(1)
    (batch,) = telemetry.batch_spans()
    assert batch.status.status_code is StatusCode.ERROR
    assert [event.name for event in batch.events] == ["exception"]
    assert batch.events[0].attributes["exception.type"] == "ConnectionError"  # type: ignore[index]
    assert batch.attributes is not None and batch.attributes["error.type"] == "ConnectionError"


async def test_a_bad_result_shape_marks_the_span(loader_cls: type, telemetry: Telemetry) -> None:
    async def short(keys: list[Any]) -> list[Any]:
        return keys[:-1]

    loader = loader_cls(short, name="short", instrumentation=traced(telemetry))
    with telemetry.tracer.start_as_current_span("request"), pytest.raises(ValueError):
        await asyncio.gather(loader.load(1), loader.load(2))
    (batch,) = telemetry.batch_spans()
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.attributes is not None and batch.attributes["error.type"] == "ValueError"


async def test_per_key_failures_are_counted(loader_cls: type, telemetry: Telemetry) -> None:
    async def some_missing(keys: list[Any]) -> dict[Any, Any]:
        return {key: key for key in keys if key % 2} | {2: LookupError("gone")}

    loader = loader_cls(some_missing, name="mixed", instrumentation=traced(telemetry))
    with telemetry.tracer.start_as_current_span("request"):
        results = await loader.load_many([1, 2, 3, 4], return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], LookupError) and isinstance(results[3], KeyError)
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None and batch.attributes["dloader.batch.key_failures"] == 2
    assert batch.status.status_code is StatusCode.UNSET


async def test_callers_cancelled_before_dispatch_make_no_span(loader_cls: type, telemetry: Telemetry) -> None:
    calls: list[list[Any]] = []

    async def load_fn(keys: list[Any]) -> list[Any]:
        calls.append(keys)
        return keys

    loader = loader_cls(load_fn, name="abandoned", instrumentation=traced(telemetry))
    with telemetry.tracer.start_as_current_span("request"):
        future = loader.load(1)
    future.cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    assert calls == []
    assert telemetry.batch_spans() == []


async def test_cancelled_during_load_fn_the_span_ends_marked(loader_cls: type, telemetry: Telemetry, spin: Any) -> None:
    started = asyncio.Event()
    finished = asyncio.Event()

    async def slow(keys: list[Any]) -> list[Any]:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.set()
        return keys

    loader = loader_cls(slow, name="slow", instrumentation=traced(telemetry, load_spans=True))

    async def caller() -> Any:
        with telemetry.tracer.start_as_current_span("request"):
            return await loader.load(1)

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()  # the only waiter goes: the core cancels the running load_fn call
    with pytest.raises(asyncio.CancelledError):
        await task
    await spin(finished.is_set)  # bounded in loop iterations: a core that let load_fn run on fails here
    await spin(lambda: len(telemetry.batch_spans()) == 1)
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None and batch.attributes["dloader.batch.cancelled"] is True
    assert batch.status.status_code is StatusCode.UNSET
    (load_span,) = telemetry.spans("dloader.load slow")
    assert load_span.attributes is not None and load_span.attributes["dloader.load.cancelled"] is True
    assert telemetry.ledger.unended() == []


async def test_shutdown_ends_running_batch_spans(loader_cls: type, telemetry: Telemetry, spin: Any) -> None:
    started = asyncio.Event()

    async def stuck(keys: list[Any]) -> list[Any]:
        started.set()
        await asyncio.Event().wait()
        return keys

    loader = loader_cls(stuck, name="stuck", instrumentation=traced(telemetry))
    with telemetry.tracer.start_as_current_span("request"):
        futures = [loader.load(key) for key in range(3)]
    await started.wait()
    assert await loader.shutdown() is None
    assert all(future.cancelled() for future in futures)
    await spin(lambda: len(telemetry.batch_spans()) == 1)
    assert telemetry.ledger.unended() == []


async def test_metrics_from_real_batches(loader_cls: type, telemetry: Telemetry) -> None:
    loader = loader_cls(echo, name="things", instrumentation=traced(telemetry, load_metrics=True))
    await loader.load_many([1, 2, 3])
    await loader.load(1)  # a cache hit
    await asyncio.sleep(0)  # outcome callbacks run one iteration after the futures are done
    (size,) = telemetry.metric_points("dloader.batch.size")
    assert (size.count, size.sum) == (1, 3)
    (duration,) = telemetry.metric_points("dloader.batch.duration")
    assert duration.count == 1
    outcomes = {
        point.attributes["dloader.load.outcome"]: point.value for point in telemetry.metric_points("dloader.loads")
    }
    assert outcomes == {"success": 3, "hit": 1}


# ---------------------------------------------------------------- subprocesses

KEYBOARD_INTERRUPT_SCRIPT = """
import asyncio, json, sys

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dloader.opentelemetry import OpenTelemetryInstrumentation

if sys.argv[1] == "compiled":
    from dloader._loader_c import DataLoader
else:
    from dloader._loader_py import DataLoader


class Ledger(SpanProcessor):
    def __init__(self):
        self.open = {}

    def on_start(self, span, parent_context=None):
        self.open[span.context.span_id] = span.name

    def on_end(self, span):
        self.open.pop(span.context.span_id, None)


ledger, exporter = Ledger(), InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(ledger)
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("script")


async def interrupted(keys):
    with tracer.start_as_current_span("SELECT"):
        raise KeyboardInterrupt


async def main():
    loader = DataLoader(
        interrupted, name="interrupted",
        instrumentation=OpenTelemetryInstrumentation(tracer_provider=provider, load_spans=True),
    )
    with tracer.start_as_current_span("request"):
        await asyncio.gather(loader.load(1), loader.load(2))


try:
    asyncio.run(main())
except KeyboardInterrupt:
    interrupted_here = True
else:
    interrupted_here = False
print(json.dumps({
    "interrupted": interrupted_here,
    "open": sorted(ledger.open.values()),
    "spans": {span.name: span.status.status_code.name for span in exporter.get_finished_spans()},
}))
"""


def run_script(tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    completed = subprocess.run(
        [sys.executable, "-P", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_keyboard_interrupt_in_load_fn_ends_every_span(loader_cls: type, tmp_path: Path) -> None:
    twin = "compiled" if loader_cls.__module__.endswith("_loader_c") else "python"
    report = run_script(tmp_path, KEYBOARD_INTERRUPT_SCRIPT, twin)
    assert report["interrupted"] is True
    assert report["open"] == []
    spans = report["spans"]
    assert spans["GraphQL DataLoader Batch interrupted"] == "ERROR"
    # Ended, whatever status the SDK gives it (it records Exception subclasses only).
    assert "SELECT" in spans
    assert "request" in spans


AUTO_INSTRUMENTED_APP = """
import asyncio, json, sys

from opentelemetry import trace

import dloader.instrumentation
from dloader._loader_c import DataLoader as CompiledDataLoader
from dloader._loader_py import DataLoader as PythonDataLoader
from dloader.opentelemetry import OpenTelemetryInstrumentation


async def echo(keys):
    return keys


async def main():
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("request"):
        for cls in (CompiledDataLoader, PythonDataLoader):
            await cls(echo, name=f"{cls.__module__}-users").load_many([1, 2])


asyncio.run(main())
print(json.dumps({"default": type(dloader.instrumentation.get_default()).__name__}))
"""


def test_opentelemetry_instrument_emits_batch_spans(tmp_path: Path, compiled_cls: type) -> None:
    command = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    if command is None:
        pytest.skip("opentelemetry-instrument is not installed next to this Python (extra: test)")
    (tmp_path / "app.py").write_text(textwrap.dedent(AUTO_INSTRUMENTED_APP))
    env = dict(os.environ)
    env.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="dloader-test",
    )
    completed = subprocess.run(
        [command, sys.executable, "app.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert '{"default": "OpenTelemetryInstrumentation"}' in completed.stdout
    for module in ("dloader._loader_c", "dloader._loader_py"):
        assert f'"name": "GraphQL DataLoader Batch {module}-users"' in completed.stdout, completed.stdout
    assert '"graphql.dataloader.batch.size": 2' in completed.stdout


# ---------------------------------------------------------------- the README's example

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    if not README.exists():
        pytest.skip(f"{README} not found (the README is not installed with the package)")
    section = README.read_text(encoding="utf-8").split("### OpenTelemetry", 1)[1].split("\n## ", 1)[0]
    code, expected = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.DOTALL)[:2]
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    # The script imports the very dloader under test (the installed one in CI).
    env = {**os.environ, "PYTHONPATH": str(Path(dloader.__file__).resolve().parent.parent)}
    completed = subprocess.run(
        [sys.executable, "-P", "-W", "error", "example.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == expected


async def test_the_readme_hook_example_logs_each_batch(
    loader_cls: type, restore_default: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The protocol from a client that is not OpenTelemetry: the README's LogBatches, as written.
    if not README.exists():
        pytest.skip(f"{README} not found (the README is not installed with the package)")
    section = README.read_text(encoding="utf-8").split("### The instrumentation hook", 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    exec(compile(code, "README hook example", "exec"), {"__name__": "readme_hook_example"})

    async def fails_one(keys: list[Any]) -> list[Any]:
        return [KeyError(key) if key == 2 else key for key in keys]

    loader = loader_cls(fails_one, name="users")  # reads the default the example set
    with caplog.at_level("INFO", logger="loaders"):
        results = await loader.load_many([1, 2, 3, 1], return_exceptions=True)
    assert results[0::2] == [1, 3] and results[3] == 1 and isinstance(results[1], KeyError)
    (record,) = [record for record in caplog.records if record.name == "loaders"]
    assert record.getMessage().startswith("users: 3 keys in ")
    assert record.getMessage().endswith(" ms, 1 failed, error=None")
