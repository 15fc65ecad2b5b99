"""``python -m benchmarks.roundtrips [--quick] [--check]``: round trips (load_fn calls) per loader
in real GraphQL queries over dloader.demo's workload, for dloader, its shims and its peers."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..implementations import (
    FLOOR,
    IMPLEMENTATION_NAMES,
    LOOP_NAMES,
    OLD,
    Implementation,
    loop_factories,
    make_implementations,
    select_dloader,
)
from ..options import names_of

if TYPE_CHECKING:  # they import dloader, which must wait for select_dloader
    from .queries import Query
    from .runner import Cell, LoneLoad

#: Not dloader: held to nothing, shown for comparison (the lone-load check compares ours with 0.1.1).
PEERS = (OLD, "aiodataloader", "strawberry")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.roundtrips", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run per cell, no warm-up (well under 60 s)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per cell (default 5, --quick 1)")
    parser.add_argument(
        "--impl",
        type=names_of([name for name in IMPLEMENTATION_NAMES if name != FLOOR]),
        help="comma-separated implementations (default: the twins and the peers). The floor is left out: "
        "it has no cache and no de-duplication, a yardstick for CPU per key, not a GraphQL loader",
    )
    parser.add_argument("--loop", choices=(*LOOP_NAMES, "both"), default="both")
    parser.add_argument("--executors", default="", help="graphql-core,strawberry (default: all available)")
    parser.add_argument("--queries", default="", help="comma-separated query names (default: all)")
    parser.add_argument("--requests", default="1,5", help="concurrent requests per cell (default 1,5)")
    parser.add_argument("--latency-ms", default="0,1", help="simulated round-trip latency per batch (default 0,1)")
    parser.add_argument("--json", default=None, help="also write every cell to this JSON file")
    parser.add_argument(
        "--source-tree", action="store_true", help="measure the checkout's dloader/ (see --help of -m benchmarks)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if dloader misses the minimum anywhere, or a lone load takes more loop "
        "iterations than 0.1.1 (one more allowed on uvloop, as documented)",
    )
    return parser.parse_args(argv)


def _select(items: Sequence[Any], wanted: str, what: str) -> list[Any]:
    if not wanted:
        return list(items)
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    by_name = {item.name: item for item in items}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(by_name)})")
    return [by_name[n] for n in names]


def format_cell(cell: Cell) -> str:
    if cell.error:
        return "error"
    mark = " " if cell.at_minimum else "!"
    if not cell.data_ok:
        mark = "≠"
    return f"{cell.total:>3}{mark}{cell.sql:>4} {cell.seconds * 1000:>7.2f}"


def print_tables(cells: list[Cell], impls: list[Implementation], queries: list[Query], out: Any) -> None:
    by_key = {(c.key.loop, c.key.executor, c.key.query, c.key.requests, c.key.latency_ms, c.key.impl): c for c in cells}
    groups = sorted({(c.key.loop, c.key.executor) for c in cells}, key=lambda g: (LOOP_NAMES.index(g[0]), g[1]))
    settings = sorted({(c.key.requests, c.key.latency_ms) for c in cells})
    width = 17
    for loop, executor in groups:
        print(f"\n### loop={loop}  executor={executor}", file=out)
        header = f"{'query':<12} {'req':>3} {'lat':>4} {'min':>4} |" + "|".join(f"{i.name:^{width}}" for i in impls)
        print(header, file=out)
        sub = f"{'':<12} {'':>3} {'ms':>4} {'':>4} |" + "|".join(f"{'rt  sql      ms':^{width}}" for _ in impls)
        print(sub, file=out)
        print("-" * len(header), file=out)
        for query in queries:
            for requests, latency in settings:
                row = [by_key.get((loop, executor, query.name, requests, latency, i.name)) for i in impls]
                present = [c for c in row if c is not None]
                if not present:
                    continue
                minimum = present[0].minimum_total
                text = "|".join(f"{format_cell(c) if c else '-':^{width}}" for c in row)
                print(f"{query.name:<12} {requests:>3} {latency:>4g} {minimum:>4} |{text}", file=out)


def print_deviations(cells: list[Cell], out: Any) -> None:
    off = [c for c in cells if not c.at_minimum]
    if not off:
        print("\nEvery implementation made exactly the minimum number of round trips in every cell.", file=out)
        return
    print("\nCells above the minimum (loader: made/minimum, all requests together):", file=out)
    for c in sorted(
        off, key=lambda c: (c.key.impl, c.key.query, c.key.loop, c.key.executor, c.key.requests, c.key.latency_ms)
    ):
        k = c.key
        if c.error:
            detail = c.error
        else:
            detail = ", ".join(
                f"{loader} {c.round_trips.get(loader, 0)}/{n}"
                for loader, n in c.minimum.items()
                if c.round_trips.get(loader, 0) != n
            )
            if len(c.round_trip_totals) > 1:
                detail += f" (totals varied across repetitions: {sorted(c.round_trip_totals)})"
            if not c.data_ok:
                detail += " DATA MISMATCH"
        print(
            f"  {k.impl:<20} {k.query:<12} {k.loop:<7} {k.executor:<12} req={k.requests} lat={k.latency_ms:g}ms: {detail}",
            file=out,
        )


def print_summary(cells: list[Cell], impls: list[Implementation], out: Any) -> None:
    print("\nSummary (all cells): cells at the minimum, round trips made / minimum", file=out)
    for impl in impls:
        mine = [c for c in cells if c.key.impl == impl.name]
        exact = sum(c.at_minimum for c in mine)
        made = sum(c.total for c in mine)
        minimum = sum(c.minimum_total for c in mine)
        print(f"  {impl.name:<20} {exact:>3}/{len(mine):<3} cells   {made:>5} / {minimum:<5} round trips", file=out)


def _fmt_counter(counter: Any) -> str:
    return ", ".join(f"{k}×{v}" if len(counter) > 1 else f"{k}" for k, v in sorted(counter.items()))


def print_lone(lone: dict[tuple[str, str], LoneLoad], impls: list[Implementation], loops: list[str], out: Any) -> None:
    print(
        "\nLone `await loader.load(k)` (30 distinct keys, load_fn returns at once): event-loop iterations"
        "\nfrom the call to load_fn / to the caller resuming (exact per-iteration counter); [call_soon ticker]",
        file=out,
    )
    print(f"{'implementation':<20} " + " ".join(f"{loop:>22}" for loop in loops), file=out)
    for impl in impls:
        parts = []
        for loop in loops:
            r = lone.get((impl.name, loop))
            text = (
                f"{_fmt_counter(r.to_batch)} / {_fmt_counter(r.to_resume)} [{_fmt_counter(r.ticker_to_resume)}]"
                if r
                else "-"
            )
            parts.append(f"{text:>22}")
        print(f"{impl.name:<20} " + " ".join(parts), file=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stdout
    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    started = time.perf_counter()
    # The installed dloader (with its compiled twin), not the checkout's source tree.
    print(f"dloader: {select_dloader(args.source_tree)}", file=out)
    import dloader
    from dloader._switches import env_flag
    from dloader.demo import build_database, build_schema

    from .queries import build_queries
    from .runner import (
        NOT_REPRODUCED,
        available_executors,
        diagnose_cell,
        lone_load_iterations,
        maker,
        run_matrix,
    )

    impls: list[Implementation] = []
    for impl in make_implementations(args.impl):
        if impl.name == FLOOR:  # see --impl
            continue
        if impl.available():
            impls.append(impl)
        else:
            print(f"note: {impl.name} unavailable ({impl.skip_reason})", file=out)
    executors_all, skipped = available_executors()
    for note in skipped:
        print(f"note: {note}", file=out)
    executors = _select(executors_all, args.executors, "executor")
    queries = _select(list(build_queries(build_schema())), args.queries, "query")
    requests_options = [int(x) for x in args.requests.split(",")]
    latencies = [float(x) for x in args.latency_ms.split(",")]
    notes: list[str] = []
    loops = loop_factories(args.loop, notes)
    for note in notes:
        print(f"note: {note}", file=out)
    print(
        f"dloader {dloader.__version__} (dloader.DataLoader is the {dloader.IMPLEMENTATION} twin); "
        f"python {sys.version.split()[0]}; implementations: " + ", ".join(impl.name for impl in impls),
        file=out,
    )
    print("\nQueries and the minimum round trips per request (one per loader per dependency level):", file=out)
    for q in queries:
        print(f"  {q.name:<12} {q.about}\n  {'':<12} {q.text}\n  {'':<12} minimum: {q.minimum}", file=out)

    db = build_database()
    reference: dict[str, Any] = {}
    cells: list[Cell] = []
    lone: dict[tuple[str, str], LoneLoad] = {}
    diagnostics: list[str] = []
    timing_notes: list[str] = []

    async def on_loop(loop_name: str) -> None:
        for impl in impls:
            lone[(impl.name, loop_name)] = await lone_load_iterations(maker(impl))
        loop_cells = await run_matrix(
            loop_name,
            db,
            impls,
            executors,
            queries,
            requests_options,
            latencies,
            reps,
            reference,
            progress=lambda s: print(s, end="", file=out, flush=True),
            warmup=0 if args.quick else 1,
        )
        cells.extend(loop_cells)
        impl_by, executor_by, query_by = ({item.name: item for item in items} for items in (impls, executors, queries))
        for cell in loop_cells:
            k = cell.key
            if k.impl in PEERS or cell.at_minimum or cell.error:
                continue
            text = await diagnose_cell(
                db, impl_by[k.impl], executor_by[k.executor], query_by[k.query], k.requests, k.latency_ms
            )
            label = f"{k.impl} {k.query} loop={k.loop} executor={k.executor} requests={k.requests} latency={k.latency_ms:g}ms\n{text}"
            # With simulated latency, sibling batches finish on timers that may fire in different
            # loop iterations, and then no loader can know to wait for the later one. Only a
            # shortfall without timers, or one that comes back on a re-run, is a dispatch problem.
            (diagnostics if k.latency_ms == 0 or text != NOT_REPRODUCED else timing_notes).append(label)

    for loop_name, factory in loops:
        print(f"\nrunning on {loop_name} ", end="", file=out, flush=True)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(on_loop(loop_name))
    print(file=out)

    loop_names = [name for name, _ in loops]
    print_tables(cells, impls, queries, out)
    print(
        "\nrt = round trips (load_fn calls, all requests of the cell), '!' = not exactly the minimum for every loader,"
        "\n'≠' = result differs from the reference; sql = statements (root SELECTs + one per batch);"
        f" ms = median wall time of {reps} timed run(s) of the whole cell.",
        file=out,
    )
    print_deviations(cells, out)
    print_summary(cells, impls, out)
    print_lone(lone, impls, loop_names, out)

    failures: list[str] = []
    for text in timing_notes:
        print(f"\nnote (timing, not counted): {text}", file=out)
    if diagnostics:
        print(
            "\nDLOADER DISPATCH SHORTFALL (batch logs; iteration = loop iteration since the request started):", file=out
        )
        print("\n".join(diagnostics), file=out)
        failures.append("dloader above the minimum")
    for impl in impls:
        for loop_name in loop_names if impl.name not in PEERS else ():
            ours, theirs = lone.get((impl.name, loop_name)), lone.get((OLD, loop_name))
            # uvloop runs a 0-delay timer as call_soon and hides its ready queue, so the
            # dispatch takes one documented extra hop there (README, Semantics: Batching).
            allowed = 1 if loop_name == "uvloop" else 0
            if ours and theirs and max(ours.to_resume) > max(theirs.to_resume) + allowed:
                failures.append(f"{impl.name} lone load slower than {OLD} on {loop_name}")
    if args.check and env_flag("DLOADER_REQUIRE_EXTENSIONS") and not any(i.name == "compiled" for i in impls):
        failures.append("DLOADER_REQUIRE_EXTENSIONS is set but the compiled twin was not measured")
    for failure in failures:
        print(f"FAIL: {failure}", file=out)
    if args.json:
        fields = ("minimum", "round_trips", "sql", "seconds", "at_minimum", "data_ok", "error")
        payload = {
            "cells": [{**vars(c.key), **{name: getattr(c, name) for name in fields}} for c in cells],
            "lone_load": [
                {"impl": i, "loop": lp, **{k: dict(v) for k, v in vars(r).items()}} for (i, lp), r in lone.items()
            ],
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1)
    print(f"\n(total {time.perf_counter() - started:.1f} s)", file=out)
    return 1 if (args.check and failures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
