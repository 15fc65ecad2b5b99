"""``python -m benchmarks``: the suite's entry point (paired mode here, ``--mode pyperf`` in
pyperf_mode); also the program pyperf re-executes for its workers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks.implementations import FLOOR, describe_dloader, loop_factories, select_dloader
from benchmarks.options import add_options, flatten, report_environment, resolve_implementations, settings_for
from benchmarks.paired import run_paired
from benchmarks.report import format_table, markdown_table, write_json
from benchmarks.scenarios import make_scenarios, memory_unsupported


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre_parser = argparse.ArgumentParser(add_help=False)
    pre_parser.add_argument("--mode", default="paired")
    if pre_parser.parse_known_args(argv)[0].mode == "pyperf":
        from benchmarks.pyperf_mode import run_pyperf

        return run_pyperf(argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmarks of dloader against a floor and published DataLoaders."
    )
    add_options(parser)
    return run_paired_mode(parser.parse_args(argv))


def run_paired_mode(args: argparse.Namespace) -> int:
    choice = select_dloader(args.source_tree)
    settings = settings_for(args)
    messages: list[str] = []
    loops = loop_factories(args.loop, messages)
    info = describe_dloader(choice)
    impls, skipped, missing = resolve_implementations(flatten(args.impl), flatten(args.require), (FLOOR, args.versus))
    messages += skipped
    scenarios = make_scenarios(flatten(args.scenario), settings.n)
    if memory_unsupported() and "memory" in (flatten(args.scenario) or ["memory"]):
        messages.append(memory_unsupported() or "")
    if not report_environment(info, impls, [name for name, _ in loops], messages, missing):
        return 2
    if not loops or not impls:
        print("error: nothing to run", file=sys.stderr)
        return 2
    print(
        f"paired mode: N={settings.n}, {settings.rounds} rounds x {settings.inner} runs, "
        f"scenarios: {', '.join(s.name for s in scenarios)}",
        flush=True,
    )

    results = run_paired(loops, scenarios, impls, settings)

    print(format_table(results, [s.name for s in scenarios], [i.name for i in impls], args.versus, args.spread))
    if args.json:
        write_json(args.json, results, {**info, "skipped": messages}, args.versus)
        print(f"results saved to {args.json}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as stream:
            stream.write(markdown_table(results, scenarios, impls))
        print(f"Markdown table written to {args.markdown}")
    if results.failures:
        print(f"CORRECTNESS FAILURES ({len(results.failures)}):", file=sys.stderr)
        for failure in results.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("all results correct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
