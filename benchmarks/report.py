"""Paired results as text tables, JSON and the README's Markdown table.

A ratio reads "median of per-round ratios [first quartile - third quartile]".
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from typing import Any

from .implementations import FLOOR, Implementation
from .paired import PairedResults, ratio_summary, value_summary
from .scenarios import Scenario


def _ratio_text(summary: dict[str, float] | None, spread: str) -> str:
    if summary is None:
        return "-"
    low, high = (summary["min"], summary["max"]) if spread == "minmax" else (summary["q1"], summary["q3"])
    median, low_text, high_text = f"{summary['median']:.2f}", f"{low:.2f}", f"{high:.2f}"
    return median if low_text == high_text == median else f"{median} [{low_text}-{high_text}]"


def format_table(
    results: PairedResults,
    scenario_names: list[str],
    impl_names: list[str],
    versus: str,
    spread: str = "iqr",
    heading: str | None = None,
) -> str:
    lines: list[str] = []
    settings = results.settings
    width = max(14, *map(len, impl_names))
    bracket = "[min-max]" if spread == "minmax" else "[IQR]"
    heading = heading or (
        f"rounds={settings.rounds} (+{settings.warmup} warm-up) x {settings.inner} runs; "
        "time: CPU clock (thread_time_ns), memory: tracemalloc"
    )
    for loop in results.loops:
        lines.append(f"\nloop={loop}  N={settings.n}  {heading}")
        header = f"{'scenario':<11} {'implementation':<{width}} {'per key':>10}  {'x floor ' + bracket:<20} x {versus} {bracket}"
        lines += [header, "-" * len(header)]
        for scenario in scenario_names:
            floor, reference = results.cell(loop, scenario, FLOOR), results.cell(loop, scenario, versus)
            for impl in impl_names:
                cell = results.cell(loop, scenario, impl)
                if cell is None:
                    continue
                values = value_summary(cell)
                assert values is not None
                per_key = f"{values['median']:.1f} {cell.unit}"
                lines.append(
                    f"{scenario:<11} {impl:<{width}} {per_key:>10}  {_ratio_text(ratio_summary(cell, floor), spread):<20} "
                    f"{_ratio_text(ratio_summary(cell, reference), spread)}"
                )
            lines.append("")
    return "\n".join(lines)


def to_json(results: PairedResults, environment: dict[str, Any], versus: str) -> dict[str, Any]:
    cells = []
    for (loop, scenario, impl), cell in results.cells.items():
        cells.append(
            {
                "loop": loop,
                "scenario": scenario,
                "implementation": impl,
                "unit": f"{cell.unit}/key",
                "keys": cell.keys,
                "per_key": value_summary(cell),
                "ratio_to_floor": ratio_summary(cell, results.cell(loop, scenario, FLOOR)),
                f"ratio_to_{versus}": ratio_summary(cell, results.cell(loop, scenario, versus)),
                "samples_per_key": cell.samples,
            }
        )
    return {
        "mode": "paired",
        "settings": vars(results.settings),
        "environment": {"python": sys.version, "platform": platform.platform(), **environment},
        "loops": results.loops,
        "results": cells,
        "failures": [vars(failure) for failure in results.failures],
    }


def write_json(path: str, results: PairedResults, environment: dict[str, Any], versus: str) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(to_json(results, environment, versus), stream, indent=1)
        stream.write("\n")


def _loop_text(name: str) -> str:
    if name != "uvloop":
        return name
    import uvloop

    return f"uvloop {uvloop.__version__}"


def markdown_table(results: PairedResults, scenarios: list[Scenario], impls: list[Implementation]) -> str:
    """The README's Performance table: a row per scenario, a column per implementation, cells
    "asyncio / uvloop" medians of ratios to the floor (memory: bytes per key on the first loop).

    \\* marks a peer handing one future to several callers; bold, a twin under the floor everywhere.
    """
    columns = [impl for impl in impls if impl.name != FLOOR]
    n = results.settings.n
    lines = [
        f"N = {n} keys, {results.settings.rounds} paired rounds. CPython {platform.python_version()}, "
        f"{platform.system()}, {datetime.date.today().isoformat()}; {' / '.join(map(_loop_text, results.loops))}:",
        "",
        "| scenario | " + " | ".join(impl.name.replace("dloader-", "dloader ") for impl in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    starred = False
    for scenario in scenarios:
        cells = []
        for impl in columns:
            ratios = []
            for loop in results.loops:
                cell = results.cell(loop, scenario.name, impl.name)
                summary = ratio_summary(cell, results.cell(loop, scenario.name, FLOOR)) if cell else None
                ratios.append(summary["median"] if summary else None)
            if scenario.unit == "B":
                first = results.cell(results.loops[0], scenario.name, impl.name)
                values = value_summary(first) if first else None
                text = f"{values['median']:.0f} B ({ratios[0]:.2f})" if values and ratios[0] else "-"
            else:
                text = " / ".join("-" if ratio is None else f"{ratio:.2f}" for ratio in ratios)
                if impl.name in ("compiled", "python") and all(ratio is not None and ratio < 1 for ratio in ratios):
                    text = f"**{text}**"
            if scenario.name in impl.shares_futures:
                text += " \\*"
                starred = True
            cells.append(text)
        label = scenario.label.format(tenth=max(1, n // 10))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if starred:
        lines += [
            "",
            "\\* These share one future among all callers of a key (so one caller's cancellation",
            "cancels the others) or hand back the same cached future; dloader gives every caller its",
            "own future, as the floor does.",
        ]
    return "\n".join(lines) + "\n"
