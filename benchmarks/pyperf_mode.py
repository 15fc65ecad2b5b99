"""pyperf mode: one pyperf benchmark per scenario × loop × implementation, in worker processes.

Names look like ``gather-uvloop-python``, values are seconds per key; ``-o FILE`` for compare_to.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import Any

from .implementations import describe_dloader, loop_factories, make_implementations, select_dloader
from .options import add_options, flatten, forwarded_options, report_environment, resolve_implementations
from .paired import Cell, PairedResults, Settings, run_paired
from .report import format_table
from .scenarios import Memory, make_scenarios


def _runner_defaults(argv: Sequence[str]) -> dict[str, Any]:
    """pyperf.Runner takes its defaults at construction, before it parses the command line."""
    pre_parser = argparse.ArgumentParser(add_help=False)
    pre_parser.add_argument("--quick", action="store_true")
    pre_parser.add_argument("--smoke", action="store_true")
    known = pre_parser.parse_known_args(argv)[0]
    if known.smoke:
        return {"processes": 1, "values": 1, "warmups": 1, "loops": 1}
    if known.quick:
        # Fixed loops: no calibration process; one worker per benchmark.
        return {"processes": 1, "values": 3, "warmups": 1, "loops": 8}
    return {}


def _bench_function(scenario: Any, impl: Any) -> Any:
    expected = scenario.expected()
    checked = []

    async def bench() -> None:
        if not checked:
            if not impl.available():
                raise RuntimeError(f"{impl.name} unavailable in the worker: {impl.skip_reason}")
            # As in paired mode: what the imports allocated is never scanned again, so a
            # peer with a big import graph (strawberry) is not charged for collecting it.
            gc.collect()
            gc.freeze()
            with impl.callers_context():
                result = await scenario.run(scenario.prepare(impl))
            if result != expected:
                raise AssertionError(f"{scenario.name} / {impl.name}: wrong result")
            checked.append(True)
            return
        with impl.callers_context():
            await scenario.run(scenario.prepare(impl))

    return bench


def run_pyperf(argv: Sequence[str]) -> int:
    import pyperf

    runner = pyperf.Runner(
        program_args=("-m", "benchmarks"),
        add_cmdline_args=lambda cmd, args: cmd.extend(forwarded_options(args)),
        **_runner_defaults(argv),
    )
    add_options(runner.argparser)
    args = runner.parse_args(list(argv))
    # Workers get a clean environment; these change what is measured or where 0.1.1 lives.
    args.inherit_environ = [
        *(args.inherit_environ or []),
        "DLOADER_BENCH_CACHE",
        "DLOADER_NO_EXTENSIONS",
        "VIRTUAL_ENV",
    ]
    choice = select_dloader(args.source_tree)
    n = args.n_keys or (100 if args.smoke else 1000)
    scenarios = [s for s in make_scenarios(flatten(args.scenario), n) if not isinstance(s, Memory)]
    memory_wanted = [s for s in make_scenarios(flatten(args.scenario), n) if isinstance(s, Memory)]
    messages: list[str] = []
    loops = loop_factories(args.loop, messages)

    info = describe_dloader(choice)
    if args.worker:
        # The parent passed the implementations it found; import only the one this worker runs.
        impls = make_implementations(flatten(args.impl))
    else:
        impls, skipped, missing = resolve_implementations(flatten(args.impl), flatten(args.require))
        messages += skipped
        args.impl = [[impl.name for impl in impls]]  # forwarded: workers register the same list
        if not report_environment(info, impls, [name for name, _ in loops], messages, missing):
            return 2
        # Correctness first, in this process: one paired round of every scenario (memory
        # included, since it cannot be a pyperf timing), so a wrong result fails the run.
        check = run_paired(
            loops,
            [*scenarios, *memory_wanted],
            impls,
            Settings(n=n, rounds=1, warmup=0, inner=1, memory_repeats=2),
            progress=lambda line: None,
        )
        if check.failures:
            print(f"CORRECTNESS FAILURES ({len(check.failures)}):", file=sys.stderr)
            for failure in check.failures:
                print(f"  {failure}", file=sys.stderr)
            return 1
        print("correctness check passed; pyperf values are seconds per key", flush=True)

    # The parent's summary: pyperf medians, as one-sample cells (ratios of medians: pyperf runs
    # each benchmark apart, so there are no rounds to pair), with the memory figures checked above.
    summary = PairedResults(Settings(n=n), loops=[name for name, _ in loops])
    for loop_name, factory in loops:
        for scenario in scenarios:
            for impl in impls:
                benchmark = runner.bench_async_func(
                    f"{scenario.name}-{loop_name}-{impl.name}",
                    _bench_function(scenario, impl),
                    loop_factory=factory,
                    inner_loops=scenario.key_count(),
                    metadata={
                        "description": f"{scenario.description}; {impl.description}",
                        "dloader_keys": scenario.key_count(),
                        "dloader_file": str(info.get("dloader_file")),
                        "dloader_implementation": str(info.get("dloader_IMPLEMENTATION")),
                    },
                )
                if benchmark is not None and not args.worker:
                    key = (loop_name, scenario.name, impl.name)
                    summary.cells[key] = Cell(*key, "ns", scenario.key_count(), [benchmark.median() * 1e9])
    if args.worker:
        return 0
    summary.cells.update((key, cell) for key, cell in check.cells.items() if key[1] == "memory")
    names = [s.name for s in [*scenarios, *memory_wanted]]
    print(format_table(summary, names, [i.name for i in impls], args.versus, heading="pyperf medians per key"))
    return 0
