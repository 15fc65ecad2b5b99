"""The scaling and end-to-end benchmarks: their smoke runs, their result checks, their readers.

Runs only from a checkout (benchmarks/ beside tests/); figures are never asserted, only
that every result is checked, the outputs are complete and the plot is reproducible.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "benchmarks" / "scaling.py").is_file():
    pytest.skip("benchmarks/ is not beside tests/ (e.g. a wheel's test run)", allow_module_level=True)
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

scaling = pytest.importorskip("benchmarks.scaling")
endtoend_module = "benchmarks.endtoend"


def _run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_scaling_smoke_checks_every_cell_and_writes_tables_json_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    markdown, svg, data = tmp_path / "scaling.md", tmp_path / "scaling.svg", tmp_path / "scaling.json"
    completed = _run(
        "benchmarks.scaling", "--smoke", "--markdown", str(markdown), "--svg", str(svg), "--json", str(data)
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    tables = markdown.read_text()
    for scenario in scaling.SCENARIOS:
        for setting in ("gc enabled", "gc.disable() during the timed region"):
            assert f"**{scenario}** ({scaling.SCENARIO_TITLES[scenario]}), {setting}" in tables
    rows = [line for line in tables.splitlines() if line.startswith(("| 10 |", "| 100 |"))]
    assert len(rows) == 2 * len(scaling.SCENARIOS) * len(scaling.GC_MODES)
    assert all("–" not in row for row in rows), "a cell is missing: an implementation failed or was dropped"
    picture = svg.read_text()
    assert picture.startswith("<?xml") and "<svg" in picture
    assert "<dc:date>" not in picture  # no timestamp: reruns with equal figures give equal files
    samples = json.loads(data.read_text())["samples"]
    assert {(row["scenario"], row["n"], row["gc"]) for row in samples} == {
        (scenario, n, gc_mode) for scenario in scaling.SCENARIOS for n in (10, 100) for gc_mode in ("on", "off")
    }


def test_scaling_plot_from_the_same_figures_is_the_same_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = scaling.Results("smoke", "asyncio", ["floor", "compiled"], environment={"python": "3.x"})
    for n, floor_ns, compiled_ns in ((10, 900.0, 1000.0), (100, 500.0, 520.0)):
        for gc_mode in scaling.GC_MODES:
            for scenario in scaling.SCENARIOS:
                results.samples[(scenario, n, "floor", gc_mode)] = [floor_ns, floor_ns * 1.1, floor_ns * 0.9]
                results.samples[(scenario, n, "compiled", gc_mode)] = [
                    compiled_ns,
                    compiled_ns * 1.1,
                    compiled_ns * 0.9,
                ]
    first, second = tmp_path / "first.svg", tmp_path / "second.svg"
    scaling.write_svg(results, first)
    scaling.write_svg(scaling.Results.from_json(json.loads(json.dumps(results.to_json()))), second)
    assert first.read_bytes() == second.read_bytes()
    assert "| 100 | 500 | 520 (1.04×) |" in scaling.markdown(results)


class WrongValuesLoader:
    """A real (if useless) loader whose values are off by one: the benchmark must refuse it."""

    def __init__(self, load_fn: Any, max_batch_size: int | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._primed: dict[Any, Any] = {}

    def _answered(self, value: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        future.set_result(value)
        return future

    def load(self, key: Any) -> asyncio.Future[Any]:
        return self._answered(self._primed.get(key, key) + 1)

    def load_many(self, keys: list[Any]) -> asyncio.Future[Any]:
        return self._answered([key + 1 for key in keys])

    def prime(self, key: Any, value: Any) -> None:
        self._primed[key] = value


def test_scaling_fails_a_loader_with_wrong_results_in_every_scenario() -> None:
    from benchmarks.implementations import Implementation, make_implementations

    (floor,) = make_implementations(["floor"])
    wrong = Implementation("wrong", "off by one", lambda: (WrongValuesLoader, WrongValuesLoader))
    assert floor.available() and wrong.available()
    results = scaling.measure([floor, wrong], scaling.PLANS["smoke"], "asyncio", progress=lambda line: None)
    failed = {(failure.scenario, failure.impl) for failure in results.failures}
    assert failed == {(scenario, "wrong") for scenario in scaling.SCENARIOS}
    assert all("wrong result at index 0" in failure.message for failure in results.failures)
    assert ("gather", 10, "floor", "on") in results.samples  # the floor still ran
    assert not any(impl == "wrong" for (_, _, impl, _) in results.samples)


def test_endtoend_smoke_runs_the_demo_query_with_both_twins_and_the_floor() -> None:
    pytest.importorskip("graphql")
    completed = _run(endtoend_module, "--smoke")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "cProfile fallback (--smoke)" in completed.stdout
    twins = re.findall(r"^(compiled|python) +[\d.]+ %", completed.stdout, flags=re.MULTILINE)
    from benchmarks.implementations import make_implementations

    available = [impl.name for impl in make_implementations(["compiled", "python"]) if impl.available()]
    assert twins == available


# A callgrind profile in the tool's raw format, as `benchmarks.endtoend` asks for it (contexts
# of the extension's functions named with their callers): the interpreter calls `load` in the
# extension (inclusive 120: 30 of its own, a dict write of 10, a send into load_fn's coroutine
# of 60 and a call of 20 into CPython that re-enters the extension for 12); inside load_fn's
# body the extension is entered again for 7; a collection costs 5. Names use the format's
# compression: "(n) name" defines n, "(n)" refers to it.
CALLGRIND_SAMPLE = """\
version: 1
creator: callgrind-3.19.0
events: Ir
summary: 1000

ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 875
cfn=(5) gc_collect_main
calls=1 0
11 5
cob=(2) /repo/dloader/_loader_c.cpython-311-x86_64-linux-gnu.so
cfl=(2) _loader_c.c
cfn=(2) __pyx_pw_7dloader_9_loader_c_load'_PyEval_EvalFrameDefault
calls=1 0
10 120

ob=(2)
fl=(2)
fn=(2)
20 30
cob=(1)
cfl=(1)
cfn=(3) PyIter_Send'2
calls=1 0
21 60
cob=(1)
cfl=(1)
cfn=(4) PyDict_SetItem
calls=1 0
22 10
cob=(1)
cfl=(1)
cfn=(6) PyObject_Vectorcall
calls=1 0
23 20

ob=(1)
fl=(1)
fn=(3)
30 53
cob=(2)
cfl=(2)
cfn=(7) __pyx_pw_7dloader_9_loader_c_load'PyIter_Send'__pyx_pw_7dloader_9_loader_c_load'_PyEval_EvalFrameDefault
calls=1 0
31 7

fn=(4)
40 10

fn=(5)
50 5

fn=(6)
60 8
cob=(2)
cfl=(2)
cfn=(8) __Pyx_Coroutine_AmSend'PyObject_Vectorcall'__pyx_pw_7dloader_9_loader_c_load'_PyEval_EvalFrameDefault
calls=1 0
61 12

ob=(2)
fl=(2)
fn=(7)
+1 7

fn=(8)
70 12

totals: 1000
"""


def test_callgrind_reader_attributes_inclusive_cost_minus_load_fn(tmp_path: Path) -> None:
    endtoend = pytest.importorskip(endtoend_module)
    profile = tmp_path / "callgrind.out"
    profile.write_text(CALLGRIND_SAMPLE)
    costs = endtoend.callgrind_costs(profile, "_loader_c")
    # Entered: 120 from the interpreter + 7 from load_fn's body; the 12 re-entered from
    # under `load` are already in its 120.
    assert (costs.total, costs.own, costs.entered, costs.foreign, costs.collector) == (1000, 49, 127, 60, 5)
    # The loader's: its own 30 + 12, the dict write 10, the CPython call's own 8, and 7 it
    # ran for load_fn (which load_fn's 60 included).
    assert costs.attributed == 30 + 12 + 10 + 8 + 7
