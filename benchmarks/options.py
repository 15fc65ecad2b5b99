"""The suite's command-line options, shared by every mode, and what they resolve to:
settings, implementations, loops and the environment header printed before a run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .implementations import DEFAULT_NAMES, IMPLEMENTATION_NAMES, LOOP_NAMES, OLD, Implementation, make_implementations
from .paired import Settings
from .scenarios import SCENARIO_NAMES


def names_of(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of ``choices``."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return names

    return parse


def flatten(values: list[list[str]] | None) -> list[str] | None:
    """The names of a repeatable ``--impl a,b --impl c`` option, once each, in order; None if absent."""
    if not values:
        return None
    return list(dict.fromkeys(name for group in values for name in group))


def add_options(parser: argparse.ArgumentParser) -> None:
    """Our options; also added to pyperf's parser so workers understand them."""
    group = parser.add_argument_group("dloader benchmarks")
    group.add_argument(
        "--mode",
        choices=("paired", "pyperf"),
        default="paired",
        help="paired: interleaved rounds in one process, CPU clock, medians of per-round ratios (default). "
        "pyperf: pyperf.Runner, worker processes, -o JSON for compare_to",
    )
    group.add_argument("--loop", choices=(*LOOP_NAMES, "both"), default="both", help="event loop(s) (default: both)")
    group.add_argument(
        "--impl",
        type=names_of(IMPLEMENTATION_NAMES),
        action="append",
        metavar="NAMES",
        help="comma-separated implementations, repeatable (default: floor, the twins and the peers): "
        + ", ".join(IMPLEMENTATION_NAMES),
    )
    group.add_argument(
        "--scenario",
        type=names_of(SCENARIO_NAMES),
        action="append",
        metavar="NAMES",
        help="comma-separated scenarios, repeatable: " + ", ".join(SCENARIO_NAMES),
    )
    group.add_argument(
        "--versus",
        choices=IMPLEMENTATION_NAMES,
        metavar="NAME",
        default=OLD,
        help=f"the second ratio column (default {OLD}); e.g. --versus compiled for compiled+stats, "
        "--versus strawberry for compat-strawberry. The floor and this one are always measured",
    )
    group.add_argument("--quick", action="store_true", help="fewer rounds: each mode finishes in well under a minute")
    group.add_argument(
        "--smoke", action="store_true", help="tiny run for CI (N=100, 3 rounds): fails only on wrong results"
    )
    group.add_argument("--n-keys", type=int, metavar="N", help="keys per scenario (default 1000)")
    group.add_argument("--rounds", type=int, help="paired: measured rounds per scenario")
    group.add_argument("--inner", type=int, help="paired: runs (fresh loaders) per sample")
    group.add_argument("--warmup", type=int, help="paired: unmeasured rounds per scenario")
    group.add_argument("--spread", choices=("iqr", "minmax"), default="iqr", help="paired: spread shown (default iqr)")
    group.add_argument("--json", metavar="PATH", help="paired: save results as JSON")
    group.add_argument(
        "--markdown", metavar="PATH", help="paired: write the README's Performance table (ratios to the floor)"
    )
    group.add_argument(
        "--require",
        type=names_of(IMPLEMENTATION_NAMES),
        action="append",
        metavar="NAMES",
        help="exit 2 if one of these implementations is unavailable, e.g. --require compiled,python in CI",
    )
    group.add_argument(
        "--source-tree",
        action="store_true",
        help="measure the checkout's dloader/ even when dloader is installed (default: the installed one)",
    )


def forwarded_options(args: argparse.Namespace) -> list[str]:
    """Our options as a pyperf worker needs them (pyperf re-executes the program for each worker)."""
    options = ["--mode", "pyperf", "--loop", args.loop]
    for name in ("impl", "scenario"):
        names = flatten(getattr(args, name))
        if names:
            options += [f"--{name}", ",".join(names)]
    options += [f"--{flag.replace('_', '-')}" for flag in ("quick", "smoke", "source_tree") if getattr(args, flag)]
    if args.n_keys:
        options += ["--n-keys", str(args.n_keys)]
    return options


def settings_for(args: argparse.Namespace) -> Settings:
    if args.smoke:
        settings = Settings(n=100, rounds=3, warmup=1, inner=1, memory_repeats=1, timeout=10)
    elif args.quick:
        settings = Settings(n=1000, rounds=25, warmup=2, inner=2, memory_repeats=2)
    else:
        settings = Settings()
    for name in ("rounds", "inner", "warmup"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    settings.n = args.n_keys or settings.n
    if settings.n < 10:
        raise SystemExit("--n-keys must be at least 10")
    return settings


def resolve_implementations(
    names: list[str] | None, required: list[str] | None, references: Sequence[str] = ()
) -> tuple[list[Implementation], list[str], list[str]]:
    """Available implementations in table order (``references`` added), skip messages, missing required ones."""
    impls = make_implementations(list(dict.fromkeys([*(names or DEFAULT_NAMES), *references])))
    available = [impl for impl in impls if impl.available()]
    messages = [f"{impl.name} skipped: {impl.skip_reason}" for impl in impls if impl not in available]
    missing = [name for name in (required or []) if name not in {impl.name for impl in available}]
    return available, messages, missing


def report_environment(
    info: dict[str, Any], impls: list[Implementation], loops: list[str], messages: list[str], missing: list[str]
) -> bool:
    """Print what runs where; False (after saying so) when a required implementation is missing."""
    print(f"python {sys.version.split()[0]} ({sys.executable})")
    if "dloader_error" in info:
        print(f"dloader: cannot import ({info['dloader_error']}); {info['dloader_choice']}")
    else:
        print(
            f"dloader {info['dloader_version']} from {info['dloader_file']} [{info['dloader_choice']}]; "
            f"dloader.IMPLEMENTATION = {info['dloader_IMPLEMENTATION']!r}"
        )
    width = max((len(impl.name) for impl in impls), default=0)
    for impl in impls:
        print(f"  {impl.name:<{width}} {impl.description}" + (f" ({impl.origin})" if impl.origin else ""))
    print(f"loops: {', '.join(loops)}")
    for message in messages:
        print(message)
    if missing:
        print(f"error: required implementation(s) unavailable: {', '.join(missing)}", file=sys.stderr)
        return False
    return True
