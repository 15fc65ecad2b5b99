"""What switching costs or saves: each dloader.compat shim paired against the library it replaces.

Run from a checkout with the bench extra: ``python benchmarks/compat_cost.py [--rounds 30] [--n 1000] [--quick]``.

Each round runs every variant once, in a rotating order, each on fresh loaders, timed with the
thread CPU clock; the figures printed are the median over rounds of the per-round ratio
shim / upstream (below 1.00: the shim is faster) and upstream's own time per key. Pairs, on each
event loop: ``dloader.compat.strawberry`` vs ``strawberry.dataloader``, and
``dloader.compat.aiodataloader`` vs ``aiodataloader`` (shims on the compiled twin when it is
installed, the selected one otherwise; ``--python`` builds them on the pure twin).
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
    import aiodataloader
    import strawberry.dataloader
except ImportError as error:  # pragma: no cover - a usage error
    sys.exit(f"compat_cost needs the bench extra (strawberry-graphql, aiodataloader): {error}")

from dloader.compat import shim_module

try:
    import uvloop
except ImportError:
    uvloop = None


async def load_fn(keys: list[Any]) -> list[Any]:
    return keys


# ---------------------------------------------------------------- scenarios: (loader, n) -> one run


async def gather_loads(loader: Any, n: int) -> None:
    await asyncio.gather(*[loader.load(key) for key in range(n)])


async def cache_hits(loader: Any, n: int) -> None:
    for key in range(n):  # primed before the clock starts (see PRIMED)
        await loader.load(key)


async def load_many(loader: Any, n: int) -> None:
    await loader.load_many(list(range(n)))


SCENARIOS: dict[str, Callable[[Any, int], Coroutine[Any, Any, None]]] = {
    "gather of N loads": gather_loads,
    "N cache hits": cache_hits,
    "load_many of N keys": load_many,
}
#: Scenarios whose loaders start with keys 0..N-1 cached.
PRIMED = {"N cache hits"}


def pairs(core: type) -> dict[str, dict[str, Callable[[], Any]]]:
    """pair name -> {"upstream": factory, "shim": factory}."""
    strawberry_shim = shim_module("strawberry", core).DataLoader
    aiodataloader_shim = shim_module("aiodataloader", core).DataLoader
    return {
        "strawberry": {
            "upstream": lambda: strawberry.dataloader.DataLoader(load_fn=load_fn),
            "shim": lambda: strawberry_shim(load_fn=load_fn),
        },
        "aiodataloader": {
            "upstream": lambda: aiodataloader.DataLoader(load_fn),
            "shim": lambda: aiodataloader_shim(load_fn),
        },
    }


async def timed(
    scenario: Callable[[Any, int], Coroutine[Any, Any, None]],
    factory: Callable[[], Any],
    n: int,
    inner: int,
    primed: bool,
) -> float:
    loaders = [factory() for _ in range(inner)]
    if primed:
        for loader in loaders:
            for key in range(n):
                loader.prime(key, key)
    started = time.thread_time()
    for loader in loaders:
        await scenario(loader, n)
    elapsed = time.thread_time() - started
    for loader in loaders:
        if hasattr(loader, "shutdown"):
            await loader.shutdown()
    return elapsed


async def measure(core: type, n: int, rounds: int, inner: int) -> list[tuple[str, str, float, float]]:
    """(pair, scenario, median ratio shim/upstream, upstream µs per key) rows."""
    rows = []
    for pair_name, variants in pairs(core).items():
        names = list(variants)
        for scenario_name, scenario in SCENARIOS.items():
            primed = scenario_name in PRIMED
            for _warmup in range(2):
                for name in names:
                    await timed(scenario, variants[name], n, inner, primed)
            ratios: list[float] = []
            upstream_per_key: list[float] = []
            for round_index in range(rounds):
                order = names if round_index % 2 == 0 else names[::-1]
                times = {name: await timed(scenario, variants[name], n, inner, primed) for name in order}
                ratios.append(times["shim"] / times["upstream"])
                upstream_per_key.append(times["upstream"] / (n * inner))
            rows.append(
                (pair_name, scenario_name, statistics.median(ratios), statistics.median(upstream_per_key) * 1e6)
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="keys per run (default 1000)")
    parser.add_argument("--rounds", type=int, default=30, help="paired rounds per scenario (default 30)")
    parser.add_argument("--inner", type=int, default=3, help="fresh loaders run back to back per sample")
    parser.add_argument("--quick", action="store_true", help="a smoke run: n=200, 5 rounds")
    parser.add_argument("--python", action="store_true", help="build the shims on the pure-Python twin")
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds = 200, 5
    if args.python:
        from dloader._loader_py import DataLoader as core
    else:
        from dloader._loader import DataLoader as core
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None:
        loops["uvloop"] = uvloop.new_event_loop
    print(f"shims on {core.__module__}.DataLoader; n={args.n}, {args.rounds} rounds × {args.inner} loaders")
    print(f"{'loop':8} {'replaces':14} {'scenario':22} {'shim/upstream':>14} {'upstream µs/key':>16}")
    for loop_name, factory in loops.items():
        with asyncio.Runner(loop_factory=factory) as runner:
            rows = runner.run(measure(core, args.n, args.rounds, args.inner))
        for pair_name, scenario_name, ratio, per_key in rows:
            print(f"{loop_name:8} {pair_name:14} {scenario_name:22} {ratio:14.2f} {per_key:16.3f}")


if __name__ == "__main__":
    main()
