"""Command line of the benchmark suite: options, which dloader is measured, and the two modes.

``python -m benchmarks [--quick|--smoke] [--mode paired|pyperf] ...``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.machinery
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
RUN_SCRIPT = PACKAGE_DIR / "run.py"

LOOP_NAMES = ("asyncio", "uvloop")


# ------------------------------------------------------------------------------ options


def _names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return names

    return parse


def add_options(parser: argparse.ArgumentParser) -> None:
    """Our options; also added to pyperf's parser so workers understand them."""
    from .implementations import IMPLEMENTATION_NAMES
    from .scenarios import SCENARIO_NAMES

    group = parser.add_argument_group("dloader benchmarks")
    group.add_argument(
        "--mode",
        choices=("paired", "pyperf"),
        default="paired",
        help="paired: interleaved rounds in one process, CPU clock, medians of "
        "per-round ratios (default; for noisy machines). pyperf: "
        "pyperf.Runner, worker processes, -o JSON for compare_to",
    )
    group.add_argument(
        "--loop",
        choices=(*LOOP_NAMES, "both"),
        default="both",
        help="event loop(s) to run every scenario on (default: both)",
    )
    group.add_argument(
        "--impl",
        type=_names(IMPLEMENTATION_NAMES),
        action="append",
        metavar="NAMES",
        help="comma-separated implementations, repeatable: "
        + ", ".join(IMPLEMENTATION_NAMES)
        + " (the floor and dloader-0.1.1 are "
        "always measured in paired mode: the ratios need them)",
    )
    group.add_argument(
        "--scenario",
        type=_names(SCENARIO_NAMES),
        action="append",
        metavar="NAMES",
        help="comma-separated scenarios, repeatable: " + ", ".join(SCENARIO_NAMES),
    )
    group.add_argument("--quick", action="store_true", help="fewer rounds: each mode finishes in well under a minute")
    group.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run for CI (N=100, 3 rounds): checks every result, fails only on wrong results, never on timings",
    )
    group.add_argument("--n-keys", type=int, metavar="N", help="keys per scenario (default 1000)")
    group.add_argument("--rounds", type=int, help="paired: measured rounds per scenario")
    group.add_argument("--inner", type=int, help="paired: runs (fresh loaders) per sample")
    group.add_argument("--warmup", type=int, help="paired: unmeasured rounds per scenario")
    group.add_argument(
        "--spread",
        choices=("iqr", "minmax"),
        default="iqr",
        help="paired: spread shown next to median ratios (default iqr)",
    )
    group.add_argument("--json", metavar="PATH", help="paired: save results as JSON")
    group.add_argument(
        "--require",
        type=_names(IMPLEMENTATION_NAMES),
        action="append",
        metavar="NAMES",
        help="fail (exit 2) if one of these implementations is unavailable, e.g. --require compiled,python in CI",
    )
    group.add_argument(
        "--source-tree",
        action="store_true",
        help="measure the dloader/ of this checkout even when dloader is "
        "installed (default: the installed one when there is one)",
    )


def _flatten(values: list[list[str]] | None) -> list[str] | None:
    if not values:
        return None
    seen: list[str] = []
    for group in values:
        for name in group:
            if name not in seen:
                seen.append(name)
    return seen


def forwarded_options(args: argparse.Namespace) -> list[str]:
    """Our options as a worker needs them (pyperf re-executes the program for each worker)."""
    options = ["--mode", "pyperf", "--loop", args.loop]
    for name in ("impl", "scenario"):
        names = _flatten(getattr(args, name))
        if names:
            options += [f"--{name}", ",".join(names)]
    for flag in ("quick", "smoke", "source_tree"):
        if getattr(args, flag):
            options.append("--" + flag.replace("_", "-"))
    if args.n_keys:
        options += ["--n-keys", str(args.n_keys)]
    return options


# ------------------------------------------------------------------------------ dloader


def _same_directory(entry: str, directory: Path) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == directory
    except OSError:
        return False


def select_dloader(source_tree: bool) -> str:
    """Make ``import dloader`` find the installed package rather than the checkout.

    Run from the repository root, ``sys.path`` starts with the root, where ``dloader/``
    is the source tree (no compiled module unless built in place). When dloader is
    installed elsewhere, the root is taken off ``sys.path`` (this package is already
    imported, so nothing else needs it). Returns a sentence saying what was chosen.
    """
    if "dloader" in sys.modules:
        return "dloader was already imported"
    if source_tree:
        if not any(_same_directory(entry, REPO_ROOT) for entry in sys.path):
            sys.path.insert(0, str(REPO_ROOT))
        return "source tree requested with --source-tree"
    others = [entry for entry in sys.path if not _same_directory(entry, REPO_ROOT)]
    if len(others) == len(sys.path):
        return "installed or on sys.path"
    if importlib.machinery.PathFinder.find_spec("dloader", others) is not None:
        sys.path[:] = others
        return "installed (the checkout was taken off sys.path)"
    return "no installed dloader found: using the source tree of this checkout"


def describe_dloader(choice: str) -> dict[str, Any]:
    info: dict[str, Any] = {"dloader_choice": choice}
    try:
        dloader = importlib.import_module("dloader")
    except Exception as error:
        info["dloader_error"] = f"{type(error).__name__}: {error}"
        return info
    info["dloader_file"] = getattr(dloader, "__file__", None)
    info["dloader_version"] = getattr(dloader, "__version__", None)
    info["dloader_IMPLEMENTATION"] = getattr(dloader, "IMPLEMENTATION", None)
    return info


def print_environment(info: dict[str, Any], impls: list[Any], loops: list[str]) -> None:
    print(f"python {sys.version.split()[0]} ({sys.executable})")
    if "dloader_error" in info:
        print(f"dloader: cannot import ({info['dloader_error']}); {info['dloader_choice']}")
    else:
        print(
            f"dloader {info['dloader_version']} from {info['dloader_file']} "
            f"[{info['dloader_choice']}]; dloader.IMPLEMENTATION = "
            f"{info['dloader_IMPLEMENTATION']!r}"
        )
    for impl in impls:
        where = f" ({impl.origin})" if impl.origin else ""
        print(f"  {impl.name:<14} {impl.description}{where}")
    print(f"loops: {', '.join(loops)}")


# ------------------------------------------------------------------------------ loops


def loop_factories(choice: str, skipped: list[str]) -> list[tuple[str, Callable[[], Any]]]:
    wanted = LOOP_NAMES if choice == "both" else (choice,)
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name in wanted:
        if name == "asyncio":
            factories.append((name, asyncio.new_event_loop))
        else:
            try:
                import uvloop
            except ImportError as error:
                skipped.append(f"uvloop skipped: {error}")
                continue
            factories.append((name, uvloop.new_event_loop))
    return factories


# ------------------------------------------------------------------------------ main


def resolve_implementations(
    names: list[str] | None, required: list[str] | None, paired: bool
) -> tuple[list[Any], list[str], list[str]]:
    """Available implementations in table order, skip messages, and missing required ones."""
    from .implementations import FLOOR, OLD, make_implementations

    wanted = list(names) if names else None
    if wanted is not None and paired:  # ratios are to the floor and to 0.1.1
        wanted += [name for name in (FLOOR, OLD) if name not in wanted]
    impls = make_implementations(wanted)
    available = [impl for impl in impls if impl.available()]
    messages = [f"{impl.name} skipped: {impl.skip_reason}" for impl in impls if impl not in available]
    missing = [name for name in (required or []) if name not in {i.name for i in available}]
    return available, messages, missing


def settings_for(args: argparse.Namespace) -> Any:
    from .paired import Settings

    if args.smoke:
        settings = Settings(n=100, rounds=3, warmup=1, inner=1, memory_repeats=1, timeout=10)
    elif args.quick:
        settings = Settings(n=1000, rounds=25, warmup=2, inner=2, memory_repeats=2)
    else:
        settings = Settings()
    for name in ("rounds", "inner", "warmup"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.n_keys:
        settings.n = args.n_keys
    if settings.n < 10:
        raise SystemExit("--n-keys must be at least 10")
    return settings


def main(argv: Sequence[str] | None = None, *, program: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre_parser = argparse.ArgumentParser(add_help=False)
    pre_parser.add_argument("--mode", default="paired")
    if pre_parser.parse_known_args(argv)[0].mode == "pyperf":
        from .pyperf_mode import run_pyperf

        return run_pyperf(argv)

    parser = argparse.ArgumentParser(
        prog=program or "python -m benchmarks",
        description="Benchmarks of dloader against a floor and published DataLoaders.",
    )
    add_options(parser)
    args = parser.parse_args(argv)
    return run_paired_mode(args)


def report_environment(info: Any, impls: Any, loops: Any, messages: list[str], missing: list[str]) -> bool:
    """Print what runs where; False (after saying so) when a required implementation is missing."""
    print_environment(info, impls, [name for name, _ in loops])
    for message in messages:
        print(message)
    if missing:
        print(f"error: required implementation(s) unavailable: {', '.join(missing)}", file=sys.stderr)
        return False
    return True


def run_paired_mode(args: argparse.Namespace) -> int:
    from .paired import run_paired
    from .report import format_table, write_json
    from .scenarios import make_scenarios, memory_unsupported

    choice = select_dloader(args.source_tree)
    settings = settings_for(args)
    messages: list[str] = []
    loops = loop_factories(args.loop, messages)
    info = describe_dloader(choice)
    impls, skipped, missing = resolve_implementations(_flatten(args.impl), _flatten(args.require), paired=True)
    messages += skipped
    scenarios = make_scenarios(_flatten(args.scenario), settings.n)
    if memory_unsupported() and "memory" in (_flatten(args.scenario) or ["memory"]):
        messages.append(memory_unsupported() or "")
    if not report_environment(info, impls, loops, messages, missing):
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

    print(format_table(results, [s.name for s in scenarios], [i.name for i in impls], args.spread))
    if args.json:
        write_json(args.json, results, {**info, "skipped": messages})
        print(f"results saved to {args.json}")
    if results.failures:
        print(f"CORRECTNESS FAILURES ({len(results.failures)}):", file=sys.stderr)
        for failure in results.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("all results correct")
    return 0
