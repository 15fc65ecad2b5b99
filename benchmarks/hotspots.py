"""Profile implementations in scenarios: cProfile's top functions, or line by line (``--lines``).

``python -m benchmarks.hotspots --impl python --scenario gather,load_many [--loop uvloop] [--lines load,...]``
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys

from benchmarks.implementations import (
    IMPLEMENTATION_NAMES,
    describe_dloader,
    loop_factories,
    make_implementations,
    select_dloader,
)
from benchmarks.options import flatten, names_of
from benchmarks.scenarios import SCENARIO_NAMES, Memory, make_scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotspots", description=__doc__)
    parser.add_argument("--impl", type=names_of(IMPLEMENTATION_NAMES), default=["python"])
    parser.add_argument("--scenario", type=names_of(SCENARIO_NAMES), action="append")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--n-keys", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300, help="profiled runs per scenario")
    parser.add_argument("--top", type=int, default=18)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument(
        "--lines",
        metavar="NAMES",
        help="comma-separated methods of the loader class (or functions of its "
        "module) to time line by line with line_profiler instead",
    )
    parser.add_argument("--source-tree", action="store_true")
    args = parser.parse_args(argv)

    choice = select_dloader(args.source_tree)
    info = describe_dloader(choice)
    print(f"dloader from {info.get('dloader_file')} [{choice}]")
    impls = make_implementations(args.impl)
    scenarios = [
        s
        for s in make_scenarios(flatten(args.scenario) or ["gather", "load_many"], args.n_keys)
        if not isinstance(s, Memory)
    ]
    ((loop_name, factory),) = loop_factories(args.loop, []) or [(None, None)]
    if factory is None:
        print(f"loop {args.loop} unavailable", file=sys.stderr)
        return 2
    for impl in impls:
        if not impl.available():
            print(f"{impl.name} skipped: {impl.skip_reason}")
            continue
        for scenario in scenarios:
            profiler = _line_profiler(impl, args.lines) if args.lines else cProfile.Profile()

            async def drive() -> None:
                expected = scenario.expected()
                for _ in range(20):  # warm-up, unprofiled
                    assert await scenario.run(scenario.prepare(impl)) == expected
                for _ in range(args.runs):
                    state = scenario.prepare(impl)
                    with impl.callers_context():
                        profiler.enable()
                        result = await scenario.run(state)
                        profiler.disable()
                    assert result == expected, f"{impl.name} / {scenario.name}: wrong result"

            loop = factory()
            try:
                loop.run_until_complete(drive())
            finally:
                loop.close()
            if args.lines:
                print(
                    f"\n=== {impl.name} / {scenario.name} / {loop_name}: {args.runs} runs of "
                    f"{scenario.key_count()} keys, line by line"
                )
                profiler.print_stats(stripzeros=True, output_unit=1e-6)
                continue
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(args.sort).print_stats(args.top)
            calls_per_key = args.runs * scenario.key_count()
            print(
                f"\n=== {impl.name} / {scenario.name} / {loop_name}: {args.runs} runs of "
                f"{scenario.key_count()} keys ({calls_per_key} keys); sorted by {args.sort}"
            )
            text = out.getvalue()
            print(text[text.find("   ncalls") :].rstrip())
    return 0


def _line_profiler(impl: object, names: str) -> object:
    from line_profiler import LineProfiler

    profiler = LineProfiler()
    loader_class = impl.loader_class  # type: ignore[attr-defined]
    module = sys.modules[loader_class.__module__]
    for name in names.split(","):
        function = getattr(loader_class, name, None) or getattr(module, name)
        profiler.add_function(function)
    return profiler


if __name__ == "__main__":
    sys.exit(main())
