"""Scaling: CPU cost per key as N grows, for gather, load_many and cache hits, gc on and off.

Usage::

    python -m benchmarks.scaling [--quick | --smoke] [--loop asyncio|uvloop] [--impl NAMES]
                                 [--markdown PATH] [--summary PATH] [--svg PATH] [--json PATH]

For N = 10, 30, 100, ... 100,000 every implementation (the floor, dloader's two twins and the
peers) runs each scenario round by round, interleaved and rotated like paired mode, timed on
the thread CPU clock, once with the garbage collector enabled as users run it and once with
``gc.disable()`` around the timed region (everything imported is ``gc.freeze()``-d first, and
each sample starts after a ``gc.collect()``, so samples start alike). A cell is the median
cost per key and the median of per-round ratios to the floor at the same N and gc setting.
Every result is checked: a wrong result or an exception exits 1. ``--svg`` needs matplotlib
(``pip install '.[plot]'``); without it the tables are still printed.

``--quick`` takes about two minutes, the full run up to ten; ``--smoke`` (N = 10, 100, one
round, for CI) checks results only and finishes in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.implementations import (
    FLOOR,
    IMPLEMENTATION_NAMES,
    Implementation,
    describe_dloader,
    make_implementations,
    new_loop,
    select_dloader,
)
from benchmarks.options import names_of
from benchmarks.paired import SampleTimeout, timed_sample
from benchmarks.scenarios import Scenario, make_scenarios

SCENARIOS = ("gather", "load_many", "cache_hits")
SCENARIO_TITLES = {
    "gather": "gather of N load()s, one batch",
    "load_many": "one load_many() of N keys",
    "cache_hits": "N cache hits, each awaited",
}
FULL_SIZES = (10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)
SMOKE_SIZES = (10, 100)
GC_MODES = ("on", "off")
SAMPLE_TIMEOUT = 120.0  # seconds for one sample before the implementation is failed


@dataclass
class Plan:
    """How much to measure: the sizes, rounds per size and keys per sample."""

    sizes: tuple[int, ...]
    warmup: int
    # Small N repeat fresh loaders until a sample holds about this many keys, so that
    # the clock's resolution and per-sample noise do not dominate.
    keys_per_sample: int
    rounds_small: int  # N <= 3,000
    rounds_large: dict[int, int]  # larger N: fewer rounds, each one costs more
    label: str

    def warmup_rounds(self, n: int) -> int:
        # By the large sizes the code paths are warm from the small ones; a warm-up round
        # there would only double the cost of the longest samples.
        return self.warmup if n < 10_000 else 0

    def rounds(self, n: int) -> int:
        return self.rounds_large.get(n, self.rounds_small)

    def inner(self, n: int) -> int:
        return max(1, math.ceil(self.keys_per_sample / n))


PLANS = {
    "full": Plan(FULL_SIZES, 2, 4_000, 25, {10_000: 17, 30_000: 11, 100_000: 7}, "full"),
    "quick": Plan(FULL_SIZES, 1, 2_000, 7, {10_000: 5, 30_000: 4, 100_000: 3}, "quick"),
    "smoke": Plan(SMOKE_SIZES, 0, 1, 1, {}, "smoke"),
}


@dataclass
class Failure:
    scenario: str
    n: int
    impl: str
    gc_mode: str
    message: str

    def __str__(self) -> str:
        return f"{self.scenario} N={self.n} {self.impl} (gc {self.gc_mode}): {self.message}"


@dataclass
class Results:
    plan: str
    loop: str
    impls: list[str]
    # (scenario, n, impl, gc_mode) -> ns per key, one per round, aligned by round
    samples: dict[tuple[str, int, str, str], list[float]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def median_ns(self, scenario: str, n: int, impl: str, gc_mode: str) -> float | None:
        values = self.samples.get((scenario, n, impl, gc_mode))
        return statistics.median(values) if values else None

    def median_ratio(self, scenario: str, n: int, impl: str, gc_mode: str) -> float | None:
        """Median over rounds of this implementation's time ÷ the floor's in the same round."""
        mine = self.samples.get((scenario, n, impl, gc_mode))
        floor = self.samples.get((scenario, n, FLOOR, gc_mode))
        if not mine or not floor:
            return None
        return statistics.median(a / b for a, b in zip(mine, floor) if b)

    def sizes(self, scenario: str) -> list[int]:
        return sorted({n for (name, n, _, _) in self.samples if name == scenario})

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "loop": self.loop,
            "impls": self.impls,
            "environment": self.environment,
            "samples": [
                {"scenario": s, "n": n, "impl": i, "gc": g, "ns_per_key": v} for (s, n, i, g), v in self.samples.items()
            ],
            "failures": [str(failure) for failure in self.failures],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        results = cls(data["plan"], data["loop"], list(data["impls"]), environment=dict(data["environment"]))
        for row in data["samples"]:
            results.samples[(row["scenario"], row["n"], row["impl"], row["gc"])] = list(row["ns_per_key"])
        return results


# ------------------------------------------------------------------------------ measuring


async def _measure_size(
    scenario: Scenario, impls: list[Implementation], plan: Plan, results: Results, alive: list[str]
) -> None:
    """All rounds of one scenario at one N: every (implementation, gc mode) once per round, rotated."""
    n = scenario.n
    expected = scenario.expected()
    inner = plan.inner(n)
    units = [(impl, gc_mode) for gc_mode in GC_MODES for impl in impls]
    collected: dict[tuple[str, str], list[float]] = {(impl.name, mode): [] for impl, mode in units}
    warmup = plan.warmup_rounds(n)
    for round_index in range(warmup + plan.rounds(n)):
        shift = round_index % len(units)
        for impl, gc_mode in units[shift:] + units[:shift]:
            if impl.name not in alive:
                continue
            try:
                per_run = await timed_sample(scenario, impl, inner, SAMPLE_TIMEOUT, expected, gc_off=gc_mode == "off")
                per_key = per_run / scenario.key_count()
            except Exception as error:  # wrong result, an exception inside the loader, a timeout
                alive.remove(impl.name)
                message = (
                    str(error)
                    if isinstance(error, AssertionError | SampleTimeout)
                    else f"{type(error).__name__}: {error}"
                )
                results.failures.append(Failure(scenario.name, n, impl.name, gc_mode, message))
                continue
            if round_index >= warmup:
                collected[(impl.name, gc_mode)].append(per_key)
    for (name, gc_mode), values in collected.items():
        if name in alive:  # only complete cells: samples stay aligned by round with the floor's
            results.samples[(scenario.name, n, name, gc_mode)] = values


async def _measure(impls: list[Implementation], plan: Plan, results: Results, progress: Callable[[str], None]) -> None:
    for scenario_name in SCENARIOS:
        alive = [impl.name for impl in impls]  # a failure drops an implementation from the scenario
        for n in plan.sizes:
            (scenario,) = make_scenarios([scenario_name], n)
            started = time.perf_counter()
            await _measure_size(scenario, impls, plan, results, alive)
            progress(f"  {scenario_name:<10} N={n:<7,} {time.perf_counter() - started:6.1f} s")


def measure(
    impls: list[Implementation], plan: Plan, loop_name: str, progress: Callable[[str], None] | None = None
) -> Results:
    results = Results(plan.label, loop_name, [impl.name for impl in impls])
    if progress is None:

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    # Everything imported so far goes to the permanent generation, as in paired mode: with
    # gc enabled, collections then scan what the benchmark itself allocates.
    gc.collect()
    gc.freeze()
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_measure(impls, plan, results, progress))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        gc.unfreeze()
    return results


# ------------------------------------------------------------------------------ output


def _column_order(results: Results) -> list[str]:
    """The floor first (everything is read against it), then the registry's order."""
    return [FLOOR, *(name for name in results.impls if name != FLOOR)] if FLOOR in results.impls else results.impls


def _ns(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def markdown(results: Results) -> str:
    """One table per scenario and gc setting: rows N, columns implementations."""
    columns = _column_order(results)
    environment = results.environment
    lines = [
        f"CPU ns per key (thread CPU clock) and, in brackets, the median ratio to the floor in the same round; "
        f"CPython {environment.get('python', '?')}, {results.loop}, {results.plan} run "
        f"(`python -m benchmarks.scaling`).",
    ]
    for scenario in SCENARIOS:
        sizes = results.sizes(scenario)
        if not sizes:
            continue
        for gc_mode in GC_MODES:
            setting = "gc enabled" if gc_mode == "on" else "gc.disable() during the timed region"
            lines += ["", f"**{scenario}** ({SCENARIO_TITLES[scenario]}), {setting}", ""]
            lines.append("| N | " + " | ".join(columns) + " |")
            lines.append("| ---: |" + " ---: |" * len(columns))
            for n in sizes:
                cells = []
                for name in columns:
                    value = results.median_ns(scenario, n, name, gc_mode)
                    ratio = results.median_ratio(scenario, n, name, gc_mode)
                    if value is None:
                        cells.append("–")
                    elif name == FLOOR or ratio is None:
                        cells.append(_ns(value))
                    else:
                        cells.append(f"{_ns(value)} ({ratio:.2f}×)")
                lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


SUMMARY_SIZES = (10, 100, 1_000, 10_000, 100_000)
SCENARIO_LABELS = {"gather": "`gather`", "load_many": "`load_many`", "cache_hits": "cache hits"}


def summary(results: Results) -> str:
    """The README's table: gc enabled, the floor's ns per key and every other ratio to it, at N = 10 … 100,000."""
    columns = [name for name in _column_order(results) if name != FLOOR]
    lines = [
        "| scenario | N | floor, ns per key | " + " | ".join(columns) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(columns),
    ]
    for scenario in SCENARIOS:
        for n in results.sizes(scenario):
            if n not in SUMMARY_SIZES:
                continue
            floor = results.median_ns(scenario, n, FLOOR, "on")
            ratios = [results.median_ratio(scenario, n, name, "on") for name in columns]
            lines.append(
                f"| {SCENARIO_LABELS[scenario]} | {n:,} | {'–' if floor is None else _ns(floor)} | "
                + " | ".join("–" if ratio is None else f"{ratio:.2f}" for ratio in ratios)
                + " |"
            )
    return "\n".join(lines) + "\n"


# A fixed colour per implementation keeps the plot stable when one is missing.
COLOURS = {
    "floor": "#000000",
    "compiled": "#d62728",
    "python": "#ff7f0e",
    "dloader-0.1.1": "#9467bd",
    "aiodataloader": "#1f77b4",
    "strawberry": "#2ca02c",
}


def write_svg(results: Results, path: Path) -> None:
    """Log-x N, log-y ns per key, one panel per scenario; solid = gc on, dashed = gc off.

    The format follows the suffix: SVG for ``.svg``, anything matplotlib knows otherwise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text stays text, and ids derive from a fixed salt: a rerun with equal figures is an equal file.
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "dloader-scaling"
    scenarios = [name for name in SCENARIOS if results.sizes(name)]
    figure, axes = plt.subplots(1, len(scenarios), figsize=(4.6 * len(scenarios), 4.2), squeeze=False)
    for axis, scenario in zip(axes[0], scenarios):
        for name in _column_order(results):
            for gc_mode, style in (("on", "-"), ("off", "--")):
                points = [
                    (n, value)
                    for n in results.sizes(scenario)
                    if (value := results.median_ns(scenario, n, name, gc_mode)) is not None
                ]
                if not points:
                    continue
                axis.plot(
                    [n for n, _ in points],
                    [value for _, value in points],
                    style,
                    color=COLOURS.get(name, "#7f7f7f"),
                    linewidth=2.2 if name in ("compiled", FLOOR) else 1.4,
                    marker="o" if gc_mode == "on" else None,
                    markersize=3,
                    label=f"{name}" if gc_mode == "on" else None,
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(SCENARIO_TITLES[scenario], fontsize=10)
        axis.set_xlabel("N (keys)")
        axis.grid(True, which="both", linewidth=0.3, alpha=0.5)
    axes[0][0].set_ylabel("CPU ns per key (log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=9)
    environment = results.environment
    figure.suptitle(
        f"Cost per key vs N — CPython {environment.get('python', '?')}, {results.loop}; "
        "solid: gc enabled, dashed: gc disabled",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.07, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".svg":
        figure.savefig(path, format="svg", metadata={"Date": None, "Creator": "python -m benchmarks.scaling"})
    else:  # e.g. a .png preview
        figure.savefig(path, dpi=110)
    plt.close(figure)


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer rounds: about two minutes")
    size.add_argument("--smoke", action="store_true", help="N = 10, 100, one round: checks results only (CI)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--impl",
        type=names_of(IMPLEMENTATION_NAMES),
        metavar="NAMES",
        help="comma-separated implementations (default: all; the floor is always measured): "
        + ", ".join(IMPLEMENTATION_NAMES),
    )
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the tables to this file")
    parser.add_argument(
        "--summary", type=Path, metavar="PATH", help="write the README's table (gc enabled, ratios) to this file"
    )
    parser.add_argument("--svg", type=Path, metavar="PATH", help="write the plot here (e.g. docs/scaling.svg)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every sample as JSON")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="measure nothing: tables and plot from a --json file of a past run",
    )
    parser.add_argument("--source-tree", action="store_true", help="measure this checkout's dloader/")
    args = parser.parse_args(argv)
    if args.svg is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:  # say so before the run, not after ten minutes
            print("--svg needs matplotlib: pip install '.[plot]'", file=sys.stderr)
            return 2
    if args.from_json is not None:
        return _report(Results.from_json(json.loads(args.from_json.read_text())), args)

    choice = select_dloader(args.source_tree)
    info = describe_dloader(choice)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    names = args.impl and [FLOOR, *(name for name in args.impl if name != FLOOR)]
    impls = make_implementations(names)
    available = [impl for impl in impls if impl.available()]
    print(f"python {sys.version.split()[0]}, loop {args.loop}, {plan.label} run")
    print(f"dloader {info.get('dloader_version')} from {info.get('dloader_file')} [{choice}]")
    for impl in impls:
        print(f"  {impl.name:<14} " + (impl.description if impl in available else f"skipped: {impl.skip_reason}"))
    if FLOOR not in {impl.name for impl in available}:
        print("the floor is unavailable: nothing to compare with", file=sys.stderr)
        return 2

    started = time.perf_counter()
    results = measure(available, plan, args.loop)
    results.environment = {"python": sys.version.split()[0], "dloader": info.get("dloader_version")}
    print(f"measured in {time.perf_counter() - started:.0f} s\n", file=sys.stderr)
    return _report(results, args)


def _report(results: Results, args: argparse.Namespace) -> int:
    """Print the tables, write the requested files; 1 if any result was wrong."""
    text = markdown(results)
    if args.smoke:
        print("(smoke run: one round, the figures mean nothing; only the results were checked)")
    print(text)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(summary(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results.to_json(), indent=1) + "\n")
    if args.svg is not None:
        write_svg(results, args.svg)
        print(f"plot written to {args.svg}")
    else:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("for the plot: pip install '.[plot]' and pass --svg PATH")
    if results.failures:
        print("\nFAILED:", file=sys.stderr)
        for failure in results.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
