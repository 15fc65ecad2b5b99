"""End to end: the share of a GraphQL request's CPU that the loader takes, for both twins.

Usage::

    python -m benchmarks.endtoend [--impl compiled,python] [--quick | --smoke] [--requests N]
                                  [--loop asyncio|uvloop] [--no-valgrind] [--keep DIR]

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
import gc
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.implementations import describe_dloader, make_implementations, new_loop, select_dloader

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

    def __call__(self, batch_function: Any, name: str) -> Any:
        """The demo's loader factory: its context asks once per loader it needs."""
        loader = self._loaders.get(batch_function)
        if loader is None:
            loader = self._loaders[batch_function] = self._loader_class(batch_function)
        return loader


class UnavailableError(RuntimeError):
    """The loader class cannot be imported (e.g. the compiled twin of a pure install)."""


def loader_class(name: str) -> Callable[[Any], Any]:
    if name == FLOOR:
        return FloorLoader
    (impl,) = make_implementations([name])
    if not impl.available():
        raise UnavailableError(f"{name} is unavailable: {impl.skip_reason}")
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
        context = demo.Context(self.db, RequestLoaders(self.loader_class))
        result = await graphql.graphql(self.schema, demo.QUERY, context_value=context)
        if result.errors:
            raise RuntimeError(f"the query failed: {result.errors[0]}")
        return result.data, dict(sorted(context.round_trips().items()))

    async def requests(self, count: int) -> list[tuple[Any, dict[str, int]]]:
        return [await self.request() for _ in range(count)]


def fingerprint(outcomes: list[tuple[Any, dict[str, int]]]) -> dict[str, Any]:
    """What must be equal whichever loader ran: the data and the round trips per loader."""
    data = json.dumps([data for data, _ in outcomes], sort_keys=True).encode()
    trips = outcomes[0][1] if outcomes else {}
    if any(other != trips for _, other in outcomes):
        raise RuntimeError("round trips differ between requests of one loader")
    return {"data_sha256": hashlib.sha256(data).hexdigest(), "round_trips": trips}


def _settle() -> None:
    """Collect, then freeze what exists: every loader's run starts with the same collector state
    (otherwise a full collection lands at a different moment in each run, a million Ir apart)."""
    gc.collect()
    gc.freeze()


def worker(loader_name: str, requests: int, loop_name: str) -> int:
    """Runs in the measured process: warm-up uncounted, then the requests inside sys.call_tracing."""
    workload = Workload(loader_name)
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        warm = loop.run_until_complete(workload.requests(WARMUP_REQUESTS))
        _settle()
        # Under callgrind, collection toggles on entering and leaving this C function.
        outcomes = sys.call_tracing(loop.run_until_complete, (workload.requests(requests),))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    print(json.dumps({"loader": loader_name, **fingerprint(warm + outcomes)}))
    return 0


# ------------------------------------------------------------------------------ callgrind


# Calls from the extension into these run someone else's coroutine (load_fn's body, a value
# cache's): their inclusive cost is not the loader's.
FOREIGN_SENDS = frozenset({"PyIter_Send", "_PyGen_Send", "PyGen_am_send", "gen_send_ex", "gen_send_ex2"})
# CPython's collection entry point (gcmodule.c / gc.c): how much of a run is garbage collection.
COLLECTIONS = frozenset({"gc_collect_main"})
# Cython's mangled prefix of every function of dloader._loader_c, and the extension's shared
# helpers (__Pyx_Coroutine_AmSend, ...): callgrind names their contexts with their callers,
# so a call into the extension that is already under one of its functions is not counted twice
# (on 3.12+ the loader starts its batch task eagerly: its coroutine runs inside the loader's call).
LOADER_SYMBOL = "7dloader_9_loader_c"
CALLER_DEPTH = 24
SEPARATE_CALLERS = (f"--separate-callers{CALLER_DEPTH}=*{LOADER_SYMBOL}*", f"--separate-callers{CALLER_DEPTH}=__Pyx_*")


@dataclass
class CallgrindCosts:
    total: int  # Ir of the measured requests
    own: int  # exclusive Ir of the extension's object: the loader's machine code
    entered: int  # inclusive Ir of the calls into the extension from outside it, the outermost ones
    foreign: int  # inclusive Ir of the extension's sends into foreign coroutines (load_fn)
    collector: int = 0  # inclusive Ir of the cyclic garbage collector's collections

    @property
    def attributed(self) -> int:
        """The loader's instructions: everything under a call into it, except load_fn's body."""
        return self.entered - self.foreign


def _base(function: str) -> str:
    return function.partition("'")[0]  # a context: name'caller'caller's caller...; name'2: recursion


def _under_the_loader(context: str) -> bool:
    """Whether a call runs under a function of the loader, not counting load_fn's body.

    Walks the callers from the nearest outward: a loader function reached through one of its
    sends into a foreign coroutine means the call happens inside load_fn (not the loader's).
    """
    callers = [name for name in context.split("'")[1:] if not name.isdigit()]
    for index, name in enumerate(callers):
        if LOADER_SYMBOL in name:
            return not (index and callers[index - 1] in FOREIGN_SENDS)
    return False


def callgrind_costs(path: Path, object_part: str) -> CallgrindCosts:
    """Read a callgrind file (raw format) for the costs of the object whose name contains ``object_part``.

    ``ob=`` sets the current object, ``fn=`` the function (names may be compressed to ``(id)``); ``cob=``
    and ``cfn=`` name the callee of the next ``calls=`` line, whose following cost line is
    that call's inclusive cost; every other cost line is exclusive cost of the current function.
    """
    names: dict[str, str] = {}
    caller_object = ""
    callee_object: str | None = None
    callee = ""
    after_call = False
    costs = CallgrindCosts(0, 0, 0, 0)
    summary: int | None = None

    def inside(object_name: str) -> bool:
        return object_part in os.path.basename(object_name)

    with path.open() as lines:
        for line in lines:
            head = line[:1]
            if head.isdigit() or head in ("+", "-", "*"):
                fields = line.split()
                cost = int(fields[1]) if len(fields) >= 2 else 0
                if after_call:  # the inclusive cost of the call just named
                    after_call = False
                    target_object = caller_object if callee_object is None else callee_object
                    callee_object = None
                    if inside(target_object) and not inside(caller_object) and not _under_the_loader(callee):
                        costs.entered += cost
                    elif inside(caller_object) and not inside(target_object) and _base(callee) in FOREIGN_SENDS:
                        costs.foreign += cost
                    if _base(callee) in COLLECTIONS:
                        costs.collector += cost
                else:
                    costs.total += cost
                    if inside(caller_object):
                        costs.own += cost
            elif line.startswith("ob="):
                caller_object = _name("ob", line[3:], names)
            elif line.startswith("fn="):
                _name("fn", line[3:], names)  # defines ids that cfn= lines may refer to
            elif line.startswith("cob="):
                callee_object = _name("ob", line[4:], names)
            elif line.startswith("cfn="):
                callee = _name("fn", line[4:], names)
            elif line.startswith("calls="):
                after_call = True
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    if summary is not None:
        costs.total = summary
    return costs


def _name(kind: str, text: str, names: dict[str, str]) -> str:
    """Resolve callgrind's name compression: ``(12) name`` defines id 12, ``(12)`` refers to it."""
    text = text.strip()
    if text.startswith("("):
        ident, _, rest = text.partition(")")
        key = kind + ident
        if rest.strip():
            names[key] = rest.strip()
        return names.get(key, text)
    return text


def run_under_callgrind(loader_name: str, requests: int, loop_name: str, directory: Path) -> dict[str, Any]:
    loader_class(loader_name)  # an unavailable class fails here, not after minutes under valgrind
    out_file = directory / f"callgrind.{loader_name}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--toggle-collect={TOGGLE_FUNCTION}",
        *SEPARATE_CALLERS,
        f"--callgrind-out-file={out_file}",
        sys.executable,
        "-m",
        "benchmarks.endtoend",
        "--worker",
        loader_name,
        "--requests",
        str(requests),
        "--loop",
        loop_name,
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=os.getcwd())
    if completed.returncode != 0:
        raise RuntimeError(f"{loader_name}: the worker failed:\n{completed.stderr[-3000:]}")
    outcome: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    costs = callgrind_costs(out_file, "_loader_c")
    if costs.total == 0:
        raise RuntimeError(f"{loader_name}: callgrind counted nothing (is {TOGGLE_FUNCTION} a symbol of this Python?)")
    outcome["costs"] = costs
    return outcome


# ------------------------------------------------------------------------------ cProfile fallback


def profile_share(loader_name: str, requests: int, loop_name: str) -> dict[str, Any]:
    """Total time of the loader's own functions over the requests' total, under cProfile."""
    workload = Workload(loader_name)
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    profiler = cProfile.Profile()
    try:
        warm = loop.run_until_complete(workload.requests(WARMUP_REQUESTS))
        _settle()
        profiler.enable()
        outcomes = loop.run_until_complete(workload.requests(requests))
        profiler.disable()
    finally:
        gc.unfreeze()
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


METHOD = f"""method: callgrind instruction counts (Ir) of the measured requests only (--toggle-collect={TOGGLE_FUNCTION})
  compiled share = (Ir under every outermost call into the _loader_c extension, inclusive: its own code
                    and the CPython and asyncio work it calls, e.g. create_future, set_result, call_soon,
                    task creation -- minus Ir of its sends into load_fn's coroutine, i.e. load_fn's body)
                   / Ir(requests with the compiled twin); calls already under the loader (its eagerly
                   started batch task) are told apart by their callers (--separate-callers{CALLER_DEPTH})
  pure share     = (compiled twin's loader Ir + Ir(pure) - Ir(compiled)) / Ir(pure): the same requests,
                   only the loader class differs, so the whole difference is the loader's
  floor share    = the same for the inline floor loader (least any loader pays here)
  over floor     = (Ir(twin) - Ir(floor)) / Ir(twin); own code = exclusive Ir in the extension / Ir
  gc             = Ir in the garbage collector's collections / Ir: a loader whose objects live longer
                   makes every collection scan more; that cost shows in 'over floor', not in a share
  (everything is collected and frozen before the measured requests, so runs start alike)"""


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.2f} %"


def print_shares(costs: dict[str, CallgrindCosts], twins: list[str], requests: int) -> None:
    """The table of the callgrind method (see METHOD)."""
    floor = costs[FLOOR].total
    compiled = costs.get("compiled")
    # Instructions the loader accounts for in each run, anchored on the compiled twin's attribution.
    loader_ir = {}
    if compiled is not None:
        anchor = compiled.attributed
        loader_ir = {name: anchor + cost.total - compiled.total for name, cost in costs.items()}
        loader_ir["compiled"] = anchor
    header = (
        f"{'loader':<10}{'Ir per request':>16}{'loader share':>14}{'over floor':>12}{'own code':>10}{'gc':>9}  target"
    )
    print("\n" + header)
    for name in (FLOOR, *twins):
        total = costs[name].total
        share = _percent(loader_ir[name], total) if name in loader_ir else "–"
        over = _percent(total - floor, total) if name != FLOOR else "–"
        own = _percent(costs[name].own, total) if name == "compiled" else "–"
        collector = _percent(costs[name].collector, total) if costs[name].collector else "–"
        target = f"≤ {TARGETS[name]:g} %" if name in TARGETS else ""
        print(f"{name:<10}{total / requests:>16,.0f}{share:>14}{over:>12}{own:>10}{collector:>9}  {target}")


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
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop (default asyncio)")
    parser.add_argument("--no-valgrind", action="store_true", help="use the cProfile fallback even with valgrind")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the callgrind files in this directory")
    parser.add_argument("--worker", metavar="LOADER", help=argparse.SUPPRESS)
    parser.add_argument("--source-tree", action="store_true", help="measure this checkout's dloader/")
    args = parser.parse_args(argv)

    choice = select_dloader(args.source_tree)
    requests = args.requests or (1 if args.smoke else 2 if args.quick else 5)
    if args.worker:
        return worker(args.worker, requests, args.loop)
    twins = [name.strip() for name in args.impl.split(",") if name.strip()]
    unknown = [name for name in twins if name not in TWINS]
    if unknown or not twins:
        parser.error(f"--impl: choose from {', '.join(TWINS)} (got {args.impl!r})")
    info = describe_dloader(choice)
    for name in list(twins):
        try:
            loader_class(name)
        except UnavailableError as error:
            print(f"{error}: skipped")
            twins.remove(name)
    if not twins:
        print("no twin to measure", file=sys.stderr)
        return 2
    print(f"python {sys.version.split()[0]}; dloader {info.get('dloader_version')} from {info.get('dloader_file')}")
    import graphql

    print(
        f"workload: dloader.demo's QUERY with graphql-core {graphql.__version__}, 0 ms latency, {requests} requests, {args.loop}"
    )
    use_valgrind = not (args.smoke or args.no_valgrind) and shutil.which("valgrind") is not None
    started = time.perf_counter()
    if use_valgrind:
        print(METHOD)
        # The compiled twin is always run: its attributed cost anchors the pure twin's share.
        measured = [FLOOR, *dict.fromkeys(["compiled", *twins])]
        directory = args.keep or Path(tempfile.mkdtemp(prefix="dloader-endtoend-"))
        directory.mkdir(parents=True, exist_ok=True)
        try:
            outcomes = {}
            for name in measured:
                try:
                    outcomes[name] = run_under_callgrind(name, requests, args.loop, directory)
                except UnavailableError as error:  # only the compiled anchor can be missing here
                    print(f"({error}: the loader shares cannot be attributed, only the differences)")
        finally:
            if args.keep is None:
                shutil.rmtree(directory, ignore_errors=True)
        problems = _check_same(outcomes)
        print_shares({name: outcome["costs"] for name, outcome in outcomes.items()}, twins, requests)
    else:
        reason = "--smoke" if args.smoke else "--no-valgrind" if args.no_valgrind else "valgrind not found"
        print(
            f"method: cProfile fallback ({reason}): tottime of the loader's own functions / total tottime;\n"
            "  approximate: profiling inflates Python-level functions (the pure twin) more than C ones"
        )
        outcomes = {name: profile_share(name, requests, args.loop) for name in (FLOOR, *twins)}
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
