"""What observability costs: stats=True and the OpenTelemetry adapter, paired against the same loader without them.

Run from a checkout with the test extra: ``python benchmarks/otel_cost.py [--rounds 40] [--n 1000] [--quick]``.

Each round runs every variant once, in a rotating order, each on a fresh loader, timed with
the thread CPU clock; the figures printed are the median over rounds of the per-round ratio
variant / off (1.00 = free), and the reference's own time per key. Variants, for each DataLoader class and event loop:

* ``off``: ``instrumentation=None``, ``stats=False`` (the reference);
* ``stats``: ``stats=True``;
* ``otel+parent``: the OpenTelemetry adapter, with a span current at the callers (the SDK's
  TracerProvider, recording, no exporter): every load captures the caller's span, every batch
  makes a linked span that is current while load_fn runs;
* ``otel, no parent``: the adapter with no span anywhere: loads capture an empty context and no
  span is made (the cost of leaving the instrumentor on for code outside any request).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

try:
    from opentelemetry.sdk.trace import TracerProvider

    from dloader.opentelemetry import OpenTelemetryInstrumentation
except ImportError as error:  # pragma: no cover - a usage error
    sys.exit(f"otel_cost needs the test extra (opentelemetry-sdk, opentelemetry-instrumentation): {error}")

try:
    import uvloop
except ImportError:
    uvloop = None


async def load_fn(keys: list[Any]) -> list[Any]:
    return keys


def classes() -> list[tuple[str, type]]:
    from dloader._loader_py import DataLoader as PythonDataLoader

    found: list[tuple[str, type]] = []
    try:
        from dloader._loader_c import DataLoader as CompiledDataLoader

        found.append(("compiled", CompiledDataLoader))
    except ImportError:
        print("(no compiled extension: measuring the pure-Python twin only)")
    found.append(("python", PythonDataLoader))
    return found


def check_core(cls: type) -> None:
    try:
        cls(load_fn, stats=True, instrumentation=None)
    except TypeError as error:
        sys.exit(f"this dloader has no stats=/instrumentation= yet (the core rewrite): {error}")


# ---------------------------------------------------------------- scenarios: (loader) -> one run


async def gather_loads(loader: Any, n: int) -> None:
    await asyncio.gather(*[loader.load(key) for key in range(n)])


async def cache_hits(loader: Any, n: int) -> None:
    for key in range(n):  # primed before the clock starts (see PRIMED)
        await loader.load(key)


async def load_many(loader: Any, n: int) -> None:
    await loader.load_many(range(n))


SCENARIOS: dict[str, Callable[[Any, int], Coroutine[Any, Any, None]]] = {
    "gather of N loads": gather_loads,
    "N cache hits": cache_hits,
    "load_many of N keys": load_many,
}
#: Scenarios whose loaders start with keys 0..N-1 cached.
PRIMED = {"N cache hits"}


# ---------------------------------------------------------------- variants


def make_variants(cls: type, provider: TracerProvider) -> dict[str, tuple[Callable[[], Any], bool]]:
    """name -> (a loader factory, whether the run happens inside a parent span)."""
    adapter = OpenTelemetryInstrumentation(tracer_provider=provider)
    return {
        "off": (lambda: cls(load_fn, name="bench", instrumentation=None), False),
        "stats": (lambda: cls(load_fn, name="bench", instrumentation=None, stats=True), False),
        "otel+parent": (lambda: cls(load_fn, name="bench", instrumentation=adapter), True),
        "otel, no parent": (lambda: cls(load_fn, name="bench", instrumentation=adapter), False),
    }


async def timed(
    scenario: Callable[[Any, int], Coroutine[Any, Any, None]],
    factory: Callable[[], Any],
    in_span: bool,
    tracer: Any,
    n: int,
    inner: int,
    primed: bool,
) -> float:
    loaders = [factory() for _ in range(inner)]
    if primed:
        for loader in loaders:
            loader.prime_many({key: key for key in range(n)})
    started = time.thread_time()
    if in_span:
        with tracer.start_as_current_span("request"):
            for loader in loaders:
                await scenario(loader, n)
    else:
        for loader in loaders:
            await scenario(loader, n)
    elapsed = time.thread_time() - started
    for loader in loaders:
        await loader.shutdown()
    return elapsed


async def measure(cls: type, n: int, rounds: int, inner: int) -> dict[str, dict[str, float]]:
    provider = TracerProvider()  # recording spans, no exporter: the cost of dloader's part
    tracer = provider.get_tracer("otel_cost")
    variants = make_variants(cls, provider)
    names = list(variants)
    ratios: dict[str, dict[str, list[float]]] = {scenario: {name: [] for name in names} for scenario in SCENARIOS}
    off_per_key: dict[str, list[float]] = {scenario: [] for scenario in SCENARIOS}
    for scenario_name, scenario in SCENARIOS.items():
        for _warmup in range(2):
            for name in names:
                factory, in_span = variants[name]
                await timed(scenario, factory, in_span, tracer, n, inner, scenario_name in PRIMED)
        for round_index in range(rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            times = {}
            for name in order:
                factory, in_span = variants[name]
                times[name] = await timed(scenario, factory, in_span, tracer, n, inner, scenario_name in PRIMED)
            for name in names:
                ratios[scenario_name][name].append(times[name] / times["off"])
            off_per_key[scenario_name].append(times["off"] / (n * inner))
    provider.shutdown()
    return {
        scenario: {
            "off, µs per key": statistics.median(off_per_key[scenario]) * 1e6,
            **{name: statistics.median(values) for name, values in by_name.items() if name != "off"},
        }
        for scenario, by_name in ratios.items()
    }


def loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    found: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [("asyncio", asyncio.new_event_loop)]
    if uvloop is not None:
        found.append(("uvloop", uvloop.new_event_loop))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1000, help="keys per scenario run (default 1000)")
    parser.add_argument("--rounds", type=int, default=40, help="paired rounds per scenario (default 40)")
    parser.add_argument("--inner", type=int, default=3, help="fresh loaders run back to back per sample")
    parser.add_argument("--quick", action="store_true", help="8 rounds: a smoke run, not a measurement")
    parser.add_argument("--only", choices=("compiled", "python"), help="measure one DataLoader class only")
    args = parser.parse_args(argv)
    rounds = 8 if args.quick else args.rounds
    print(f"Python {sys.version.split()[0]}; N = {args.n}; {rounds} rounds; median of per-round ratios to 'off'")
    for class_name, cls in classes():
        if args.only is not None and class_name != args.only:
            continue
        check_core(cls)
        for loop_name, factory in loops():
            loop = factory()
            try:
                table = loop.run_until_complete(measure(cls, args.n, rounds, args.inner))
            finally:
                loop.close()
            columns = list(next(iter(table.values())))
            print(f"\n{class_name} / {loop_name}")
            print(f"| scenario | {' | '.join(columns)} |")
            print(f"| --- |{' --- |' * len(columns)}")
            for scenario, by_name in table.items():
                print(f"| {scenario} | {' | '.join(f'{by_name[name]:.2f}' for name in columns)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
