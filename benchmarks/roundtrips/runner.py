"""Round-trip runs: the query matrix, the lone-load iteration count and the batch-log diagnostics.

Imports dloader.demo (the workload): import it only after select_dloader chose the dloader.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dloader.demo import Context, LoaderFactory, build_schema

from ..implementations import Implementation
from .queries import Query

# ---------------------------------------------------------------- executors


@dataclass(frozen=True)
class Executor:
    name: str
    run: Callable[[str, Context], Awaitable[tuple[Any, Any]]]  # -> (data, errors)


def available_executors() -> tuple[list[Executor], list[str]]:
    """graphql-core always; strawberry when installed. Returns (executors, skipped notes)."""
    import graphql

    gql_schema = build_schema()

    async def run_graphql_core(text: str, ctx: Context) -> tuple[Any, Any]:
        result = await graphql.graphql(gql_schema, text, context_value=ctx)
        return result.data, result.errors

    executors = [Executor("graphql-core", run_graphql_core)]
    skipped: list[str] = []
    try:
        from .strawberry_schema import build_strawberry_schema
    except ImportError as error:
        skipped.append(f"strawberry executor skipped: {error}")
    else:
        sb_schema = build_strawberry_schema()

        async def run_strawberry(text: str, ctx: Context) -> tuple[Any, Any]:
            result = await sb_schema.execute(text, context_value=ctx)
            return result.data, result.errors

        executors.append(Executor("strawberry", run_strawberry))
    return executors, skipped


# ---------------------------------------------------------------- loop iteration ticker


class Ticker:
    """Counts event-loop iterations: a callback that re-schedules itself with call_soon.

    A callback scheduled while the ready queue is being run goes to the *next*
    iteration on both asyncio and uvloop, so the count grows by one per iteration.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ticks = 0
        self._handle: asyncio.Handle | None = None

    def _tick(self) -> None:
        self.ticks += 1
        self._handle = self.loop.call_soon(self._tick)

    def start(self) -> Ticker:
        self._handle = self.loop.call_soon(self._tick)
        return self

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __call__(self) -> int:
        return self.ticks


class IterationCounter:
    """Counts event-loop iterations exactly, at a fixed point of each iteration.

    asyncio: wraps the loop's ``_run_once`` (one call per iteration). Other loops
    (uvloop): a reader on an always-readable socket, whose callback libuv runs in
    the I/O poll phase, once per iteration. Unlike a ``call_soon`` ticker, the count
    does not depend on where a callback sits in the ready queue.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0
        if isinstance(loop, asyncio.BaseEventLoop):
            run_once = loop._run_once  # type: ignore[attr-defined]

            def counting_run_once() -> None:
                self.count += 1
                run_once()

            loop._run_once = counting_run_once  # type: ignore[attr-defined]
            self._undo: Callable[[], None] = lambda: delattr(loop, "_run_once")
        else:
            reader, writer = socket.socketpair()
            writer.send(b"x")  # never read: the reader fires on every poll

            def on_poll() -> None:
                self.count += 1

            loop.add_reader(reader.fileno(), on_poll)

            def undo() -> None:
                loop.remove_reader(reader.fileno())
                reader.close()
                writer.close()

            self._undo = undo

    def stop(self) -> None:
        self._undo()

    def __call__(self) -> int:
        return self.count


@dataclass
class LoneLoad:
    to_batch: Counter[int] = field(default_factory=Counter)  # iterations from load() to load_fn called
    to_resume: Counter[int] = field(default_factory=Counter)  # iterations from load() to the awaiter resumed
    ticker_to_resume: Counter[int] = field(default_factory=Counter)  # the same, counted by a call_soon ticker


def maker(impl: Implementation) -> LoaderFactory:
    """The workload's loader factory for an implementation (batch functions return lists in key order)."""
    return lambda batch_function, _name: impl.new("plain", batch_function)


async def lone_load_iterations(make: LoaderFactory, n: int = 30) -> LoneLoad:
    """``await loader.load(k)`` alone (distinct keys, so never a cache hit)."""
    loop = asyncio.get_running_loop()
    out = LoneLoad()
    called_at: list[int] = []

    async def batch(keys: list[Any]) -> list[Any]:
        called_at.append(clock())
        return list(keys)

    for use_ticker in (False, True):
        counter: Any = Ticker(loop).start() if use_ticker else IterationCounter(loop)
        clock: Callable[[], int] = counter
        loader = make(batch, "lone")
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            for key in range(n):
                start = clock()
                await loader.load(key)
                if use_ticker:
                    out.ticker_to_resume[clock() - start] += 1
                else:
                    out.to_resume[clock() - start] += 1
                    out.to_batch[called_at[-1] - start] += 1
        finally:
            counter.stop()
            shutdown = getattr(loader, "shutdown", None)
            if shutdown is not None:
                await shutdown()
    return out


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class CellKey:
    loop: str
    executor: str
    query: str
    requests: int
    latency_ms: float
    impl: str


@dataclass
class Cell:
    key: CellKey
    minimum: dict[str, int]  # per loader, for all requests together
    round_trips: dict[str, int] = field(default_factory=dict)  # the worst repetition's
    round_trip_totals: set[int] = field(default_factory=set)  # total per repetition (should be one value)
    sql: int = 0
    times: list[float] = field(default_factory=list)
    data_ok: bool = True
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.round_trips.values())

    @property
    def minimum_total(self) -> int:
        return sum(self.minimum.values())

    @property
    def at_minimum(self) -> bool:
        return not self.error and self.data_ok and self.round_trips == self.minimum and len(self.round_trip_totals) == 1

    @property
    def seconds(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


async def run_requests(
    db: sqlite3.Connection,
    make: LoaderFactory,
    executor: Executor,
    query: Query,
    requests: int,
    latency: float,
    clock: Callable[[], int] | None = None,
) -> tuple[list[Context], list[Any], float]:
    contexts = [Context(db, make, latency, clock=clock) for _ in range(requests)]
    start = time.perf_counter()
    results = await asyncio.gather(*(executor.run(query.text, ctx) for ctx in contexts))
    elapsed = time.perf_counter() - start
    for _, errors in results:
        if errors:
            raise RuntimeError(f"{executor.name} returned errors: {errors[:3]}")
    return contexts, [data for data, _ in results], elapsed


async def run_matrix(
    loop_name: str,
    db: sqlite3.Connection,
    impls: Sequence[Implementation],
    executors: Sequence[Executor],
    queries: Sequence[Query],
    requests_options: Sequence[int],
    latencies_ms: Sequence[float],
    reps: int,
    reference: dict[str, Any],
    progress: Callable[[str], None] = lambda _: None,
    warmup: int = 1,
) -> list[Cell]:
    """Every (executor, query, requests, latency) cell for every implementation, on this loop.

    Repetitions are interleaved across implementations; the first ``warmup`` ones
    are not timed (their round trips count too). ``reference`` maps query name to the
    expected data (filled by the first implementation that runs it).
    """
    cells: list[Cell] = []
    for executor in executors:
        for query in queries:
            for requests in requests_options:
                for latency_ms in latencies_ms:
                    row = {
                        impl.name: Cell(
                            CellKey(loop_name, executor.name, query.name, requests, latency_ms, impl.name),
                            {loader: n * requests for loader, n in query.minimum.items()},
                        )
                        for impl in impls
                    }
                    for rep in range(reps + warmup):
                        for impl in impls:
                            cell = row[impl.name]
                            if cell.error:
                                continue
                            try:
                                contexts, datas, elapsed = await run_requests(
                                    db, maker(impl), executor, query, requests, latency_ms / 1000
                                )
                            except Exception as error:  # report, keep going
                                cell.error = f"{type(error).__name__}: {error}"[:200]
                                continue
                            trips: Counter[str] = Counter()
                            for ctx in contexts:
                                trips.update(ctx.round_trips())
                            if sum(trips.values()) >= cell.total:
                                cell.round_trips = dict(sorted(trips.items()))
                                cell.sql = sum(ctx.statements for ctx in contexts)
                            cell.round_trip_totals.add(sum(trips.values()))
                            expected = reference.setdefault(query.name, datas[0])
                            if any(data != expected for data in datas):
                                cell.data_ok = False
                            if rep >= warmup:
                                cell.times.append(elapsed)
                    cells.extend(row.values())
                    progress(".")
    return cells


# ---------------------------------------------------------------- diagnostics


class _TracingLoader:
    """Logs every load()/load_many() call with the loop iteration it happened in."""

    def __init__(self, inner: Any, log: list[tuple[int, Any, str, Any]], clock: Callable[[], int]):
        self._inner, self._log, self._clock = inner, log, clock

    def load(self, key: Any) -> Any:
        self._log.append((self._clock(), self, "load", key))
        return self._inner.load(key)

    def load_many(self, keys: Any) -> Any:
        keys = list(keys)
        self._log.append((self._clock(), self, "load_many", keys))
        return self._inner.load_many(keys)


NOT_REPRODUCED = "  (not reproduced on re-run)"


async def diagnose_cell(
    db: sqlite3.Connection, impl: Implementation, executor: Executor, query: Query, requests: int, latency_ms: float
) -> str:
    """Re-run one cell with an iteration ticker; return the load calls and batches per loader."""
    ticker = IterationCounter(asyncio.get_running_loop())
    log: list[tuple[int, Any, str, Any]] = []
    make = maker(impl)

    def traced(batch_fn: Any, name: str) -> Any:
        return _TracingLoader(make(batch_fn, name), log, ticker)

    try:
        contexts, _, _ = await run_requests(db, traced, executor, query, requests, latency_ms / 1000, ticker)
    finally:
        ticker.stop()
    lines: list[str] = []
    for index, ctx in enumerate(contexts):
        trips = ctx.round_trips()
        over = {loader: n for loader, n in trips.items() if n != query.minimum.get(loader)}
        if not over:
            continue
        lines.append(f"  request {index}: round trips {dict(sorted(trips.items()))} (minimum {query.minimum})")
        for loader in sorted(over):
            calls: Counter[int] = Counter()
            traced_loader = getattr(ctx, loader)
            for tick, who, kind, key in log:
                if who is traced_loader:
                    calls[tick] += len(key) if kind == "load_many" else 1
            lines.append(f"    {loader}: keys requested by loop iteration {dict(sorted(calls.items()))}")
            for tick, name, keys in ctx.batches:
                if name == loader:
                    lines.append(
                        f"      batch at iteration {tick}: {len(keys)} keys {keys[:12]}{' ...' if len(keys) > 12 else ''}"
                    )
        break
    return "\n".join(lines) or NOT_REPRODUCED
