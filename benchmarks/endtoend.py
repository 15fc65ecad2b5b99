"""End to end: the share of a GraphQL request's CPU that the loader takes, for both twins.

Usage::

    python -m benchmarks.endtoend [--impl compiled,python] [--quick | --smoke] [--requests N]
                                  [--no-valgrind]

The workload is the demo's (``dloader.demo``): graphql-core executes its nested ``QUERY``
over the in-memory SQLite library, with per-request loaders and no simulated latency, so
every instruction is CPU work. Each loader class runs the same requests in its own process.

Method, where valgrind exists (instruction counts, deterministic):

* every loader runs in ``valgrind --tool=callgrind --collect-atstart=no
  --toggle-collect=_PyEval_CallTracing``; the worker runs two warm-up requests uncounted,
  then the measured requests inside ``sys.call_tracing(...)``, a C function used by nothing
  else, so exactly the measured requests are counted (no start-up, imports or warm-up);
* **share over the floor** = (Ir(twin) - Ir(floor)) / Ir(twin), where the floor is an inline
  loader written below that does only what the workload needs (a future per ``load()``, a
  task per batch, a dict of waiters for de-duplication, a dict of values as cache, mapping
  results): what the twin costs beyond the least any loader pays, including everything it
  makes asyncio do. The difference is robust: resolvers, graphql-core and ``load_fn`` run
  identically in both (same round trips, same results: checked);
* for the compiled twin also **own code**: instructions executed in the extension's object
  (``_loader_c*.so``), exclusive (not what it calls) -- the part of the share that is the
  loader's machine code; CPython calls it makes (dicts, futures, call_soon) are in the
  difference above, not here.

Without valgrind (or with ``--no-valgrind``) the fallback is cProfile: the total time of the
loader's own functions (pure twin: every function of ``dloader/_loader_py.py``; compiled twin:
the C-level calls cProfile sees, ``load``/``load_many`` and friends) over the requests' total,
approximate (profiling slows Python functions more than C ones). Targets (issue 13): compiled
≤ 3 %, pure ≤ 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks._cli import describe_dloader, select_dloader
from benchmarks.implementations import make_implementations

FLOOR = "floor"
TWINS = ("compiled", "python")
TARGETS = {"compiled": 3.0, "python": 5.0}
WARMUP_REQUESTS = 2
# The C function whose call the worker wraps around the measured requests (sys.call_tracing).
TOGGLE_FUNCTION = "_PyEval_CallTracing"


# ------------------------------------------------------------------------------ the floor


class FloorLoader:
    """The least a loader must do for the demo's query, written inline as a yardstick.

    Per ``load()``: one future, a dict lookup in the values, a dict lookup in the waiters
    (de-duplication within and across batches), an append; per batch: one task, a
    ``sleep(0)`` per loop iteration in which keys still arrived, and one ``load_fn`` call; per key at resolution: a value write and ``set_result`` per caller.
    No error handling, no cancellation checks, no shutdown: never a loader to use.
    """

    __slots__ = ("_batch", "_create_future", "_create_task", "_load_fn", "_values", "_waiters")

    def __init__(self, load_fn: Callable[[list[Any]], Any]) -> None:
        loop = asyncio.get_running_loop()
        self._load_fn = load_fn
        self._create_future = loop.create_future
        self._create_task = loop.create_task
        self._values: dict[Any, Any] = {}
        self._waiters: dict[Any, list[asyncio.Future[Any]]] = {}  # queued or in flight
        self._batch: list[Any] | None = None

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        try:
            value = self._values[key]
        except KeyError:
            pass
        else:
            future.set_result(value)
            return future
        waiting = self._waiters.get(key)
        if waiting is not None:
            waiting.append(future)
            return future
        self._waiters[key] = [future]
        batch = self._batch
        if batch is None:
            batch = self._batch = []
            self._create_task(self._dispatch(batch))
        batch.append(key)
        return future

    async def _dispatch(self, batch: list[Any]) -> None:
        # Keys arrive over several loop iterations (a resolver may await before loading):
        # look one more iteration while the batch still grows, so the floor makes as few
        # round trips as dloader does (checked), as any loader for this workload must.
        seen = 1
        while len(batch) != seen:
            seen = len(batch)
            await asyncio.sleep(0)
        self._batch = None
        values = await self._load_fn(batch)
        if isinstance(values, dict):  # the demo's authors and users come as a mapping
            values = [values[key] for key in batch]
        for key, value in zip(batch, values):
            self._values[key] = value
            for future in self._waiters.pop(key):
                future.set_result(value)


class RequestLoaders:
    """Per-request loaders, one per batch function, the same for every class measured
    (so a registry's own cost is in none of the differences)."""

    def __init__(self, loader_class: Callable[[Any], Any]) -> None:
        self._loader_class = loader_class
        self._loaders: dict[Any, Any] = {}

    def get(self, batch_function: Any) -> Any:
        loader = self._loaders.get(batch_function)
        if loader is None:
            loader = self._loaders[batch_function] = self._loader_class(batch_function)
        return loader


def loader_class(name: str) -> Callable[[Any], Any]:
    if name == FLOOR:
        return FloorLoader
    (impl,) = make_implementations([name])
    if not impl.available():
        raise RuntimeError(f"{name} is unavailable: {impl.skip_reason}")
    cls: Callable[[Any], Any] = impl.loader_class
    return cls


# ------------------------------------------------------------------------------ the workload


class Workload:
    """The demo's schema and database, and requests that each get fresh loaders."""

    def __init__(self, loader_name: str) -> None:
        from dloader import demo

        self.demo = demo
        self.schema = demo.build_schema()
        self.db = demo.build_database()
        self.loader_class = loader_class(loader_name)

    async def request(self) -> tuple[Any, dict[str, int]]:
        import graphql

        demo = self.demo
        context = demo.Context(demo.Database(self.db, 0.0), RequestLoaders(self.loader_class))
        result = await graphql.graphql(self.schema, demo.QUERY, context_value=context)
        if result.errors:
            raise RuntimeError(f"the query failed: {result.errors[0]}")
        return result.data, dict(sorted(context.round_trips.items()))

    async def requests(self, count: int) -> list[tuple[Any, dict[str, int]]]:
        return [await self.request() for _ in range(count)]


def fingerprint(outcomes: list[tuple[Any, dict[str, int]]]) -> dict[str, Any]:
    """What must be equal whichever loader ran: the data and the round trips per loader."""
    data = json.dumps([data for data, _ in outcomes], sort_keys=True).encode()
    trips = outcomes[0][1] if outcomes else {}
    if any(other != trips for _, other in outcomes):
        raise RuntimeError("round trips differ between requests of one loader")
    return {"data_sha256": hashlib.sha256(data).hexdigest(), "round_trips": trips}


def worker(loader_name: str, requests: int) -> int:
    """Runs in the measured process: warm-up uncounted, then the requests inside sys.call_tracing."""
    workload = Workload(loader_name)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        warm = loop.run_until_complete(workload.requests(WARMUP_REQUESTS))
        # Under callgrind, collection toggles on entering and leaving this C function.
        outcomes = sys.call_tracing(loop.run_until_complete, (workload.requests(requests),))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    print(json.dumps({"loader": loader_name, **fingerprint(warm + outcomes)}))
    return 0


# ------------------------------------------------------------------------------ callgrind


def callgrind_costs(path: Path, object_part: str) -> tuple[int, int]:
    """Total Ir of a callgrind file, and the exclusive Ir of objects whose name contains ``object_part``.

    Reads the raw format: ``ob=``/``fl=``/``fn=`` set the current position (names may be
    compressed to ``(id)``); a cost line right after ``calls=`` is the call's inclusive cost
    and is skipped, every other cost line is exclusive cost of the current function.
    """
    names: dict[str, str] = {}
    current_object = ""
    in_object = False
    after_call = False
    total = 0
    own = 0
    summary: int | None = None
    with path.open() as lines:
        for line in lines:
            if not line or line[0] == "\n":
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                if after_call:
                    after_call = False
                    continue
                fields = line.split()
                if len(fields) >= 2:
                    cost = int(fields[1])
                    total += cost
                    if in_object:
                        own += cost
                continue
            if line.startswith("ob="):
                current_object = _name(line[3:].strip(), names)
                in_object = object_part in os.path.basename(current_object)
            elif line.startswith("calls="):
                after_call = True
            elif line.startswith(("summary:", "totals:")):
                summary = int(line.split()[1])
            elif line.startswith(("cob=", "cfi=", "cfl=", "cfn=")):
                _name(line.split("=", 1)[1].strip(), names, line[:3])
    return (summary if summary is not None else total), own


def _name(text: str, names: dict[str, str], kind: str = "ob") -> str:
    """Resolve callgrind's name compression: ``(12) name`` defines, ``(12)`` refers."""
    key_kind = "ob" if kind in ("ob", "cob") else kind
    if text.startswith("("):
        ident, _, rest = text.partition(")")
        key = f"{key_kind}{ident}"
        if rest.strip():
            names[key] = rest.strip()
        return names.get(key, text)
    return text


def run_under_callgrind(loader_name: str, requests: int, directory: Path) -> dict[str, Any]:
    out_file = directory / f"callgrind.{loader_name}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--toggle-collect={TOGGLE_FUNCTION}",
        f"--callgrind-out-file={out_file}",
        sys.executable,
        "-m",
        "benchmarks.endtoend",
        "--worker",
        loader_name,
        "--requests",
        str(requests),
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=os.getcwd())
    if completed.returncode != 0:
        raise RuntimeError(f"{loader_name}: the worker failed:\n{completed.stderr[-3000:]}")
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    total, own = callgrind_costs(out_file, "_loader_c")
    if total == 0:
        raise RuntimeError(f"{loader_name}: callgrind counted nothing (is {TOGGLE_FUNCTION} a symbol of this Python?)")
    outcome.update(total_ir=total, own_ir=own)
    return outcome


# ------------------------------------------------------------------------------ cProfile fallback


def profile_share(loader_name: str, requests: int) -> dict[str, Any]:
    """Total time of the loader's own functions over the requests' total, under cProfile."""
    workload = Workload(loader_name)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    profiler = cProfile.Profile()
    try:
        warm = loop.run_until_complete(workload.requests(WARMUP_REQUESTS))
        profiler.enable()
        outcomes = loop.run_until_complete(workload.requests(requests))
        profiler.disable()
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    stats = pstats.Stats(profiler)
    total = 0.0
    loader = 0.0
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        if "_loader_py" in filename or "_loader_c" in function or "dloader._loader_c" in function:
            loader += tottime
    return {"loader": loader_name, **fingerprint(warm + outcomes), "share": 100 * loader / total if total else 0.0}


# ------------------------------------------------------------------------------ main


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.2f} %"


def _check_same(outcomes: dict[str, dict[str, Any]]) -> list[str]:
    reference = outcomes.get(FLOOR) or next(iter(outcomes.values()))
    problems = []
    for name, outcome in outcomes.items():
        for key in ("data_sha256", "round_trips"):
            if outcome[key] != reference[key]:
                problems.append(f"{name}: {key} differs from the floor's ({outcome[key]} != {reference[key]})")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.endtoend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--impl", default="compiled,python", help="comma-separated twins (default compiled,python)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer requests (2)")
    size.add_argument("--smoke", action="store_true", help="one request, cProfile only: checks results (CI)")
    parser.add_argument("--requests", type=int, help="measured requests per loader (default 5)")
    parser.add_argument("--no-valgrind", action="store_true", help="use the cProfile fallback even with valgrind")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the callgrind files in this directory")
    parser.add_argument("--worker", metavar="LOADER", help=argparse.SUPPRESS)
    parser.add_argument("--source-tree", action="store_true", help="measure this checkout's dloader/")
    args = parser.parse_args(argv)

    choice = select_dloader(args.source_tree)
    requests = args.requests or (1 if args.smoke else 2 if args.quick else 5)
    if args.worker:
        return worker(args.worker, requests)
    twins = [name.strip() for name in args.impl.split(",") if name.strip()]
    unknown = [name for name in twins if name not in TWINS]
    if unknown or not twins:
        parser.error(f"--impl: choose from {', '.join(TWINS)} (got {args.impl!r})")
    info = describe_dloader(choice)
    print(f"python {sys.version.split()[0]}; dloader {info.get('dloader_version')} from {info.get('dloader_file')}")
    import graphql

    print(f"workload: dloader.demo's QUERY with graphql-core {graphql.__version__}, 0 ms latency, {requests} requests")
    use_valgrind = not (args.smoke or args.no_valgrind) and shutil.which("valgrind") is not None
    started = time.perf_counter()
    if use_valgrind:
        print(
            f"method: callgrind instruction counts of the measured requests only (--toggle-collect={TOGGLE_FUNCTION});\n"
            "  over floor = (Ir(twin) - Ir(inline floor loader)) / Ir(twin); own code (compiled) = exclusive Ir\n"
            "  in the _loader_c object / Ir(twin)"
        )
        directory = args.keep or Path(tempfile.mkdtemp(prefix="dloader-endtoend-"))
        directory.mkdir(parents=True, exist_ok=True)
        try:
            outcomes = {name: run_under_callgrind(name, requests, directory) for name in (FLOOR, *twins)}
        finally:
            if args.keep is None:
                shutil.rmtree(directory, ignore_errors=True)
        problems = _check_same(outcomes)
        floor_ir = outcomes[FLOOR]["total_ir"]
        print(f"\n{'loader':<10}{'Ir per request':>16}{'over floor':>12}{'own code':>10}  target")
        print(f"{FLOOR:<10}{floor_ir / requests:>16,.0f}")
        for name in twins:
            outcome = outcomes[name]
            total = outcome["total_ir"]
            own = _percent(outcome["own_ir"], total) if name == "compiled" else "–"
            over = _percent(total - floor_ir, total)
            print(f"{name:<10}{total / requests:>16,.0f}{over:>12}{own:>10}  ≤ {TARGETS[name]:g} %")
    else:
        reason = "--smoke" if args.smoke else "--no-valgrind" if args.no_valgrind else "valgrind not found"
        print(
            f"method: cProfile fallback ({reason}): tottime of the loader's own functions / total tottime;\n"
            "  approximate: profiling inflates Python-level functions (the pure twin) more than C ones"
        )
        outcomes = {name: profile_share(name, requests) for name in (FLOOR, *twins)}
        problems = _check_same(outcomes)
        print(f"\n{'loader':<10}{'share':>10}  target")
        for name in twins:
            print(f"{name:<10}{outcomes[name]['share']:>8.2f} %  ≤ {TARGETS[name]:g} %")
    print(f"\n(round trips per request: {outcomes[FLOOR]['round_trips']}; {time.perf_counter() - started:.0f} s)")
    if problems:
        print("\nFAILED: the loaders disagree:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
