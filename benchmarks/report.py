"""Tables and JSON for paired results: scenario × implementation, per key, as × floor and × 0.1.1.

A ratio reads "median of per-round ratios [first quartile – third quartile]".
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any

from .implementations import FLOOR, OLD
from .paired import PairedResults, ratio_summary, value_summary


def _ratio_text(summary: dict[str, float] | None, spread: str) -> str:
    if summary is None:
        return "-"
    if spread == "minmax":
        low, high = summary["min"], summary["max"]
    else:
        low, high = summary["q1"], summary["q3"]
    median, low, high = f"{summary['median']:.2f}", f"{low:.2f}", f"{high:.2f}"
    if low == high == median:
        return median
    return f"{median} [{low}-{high}]"


def format_table(results: PairedResults, scenario_names: list[str], impl_names: list[str], spread: str = "iqr") -> str:
    lines: list[str] = []
    settings = results.settings
    for loop in results.loops:
        lines.append("")
        lines.append(
            f"loop={loop}  N={settings.n}  rounds={settings.rounds} "
            f"(+{settings.warmup} warm-up) x {settings.inner} runs; time: CPU clock "
            f"(thread_time_ns), memory: tracemalloc"
        )
        header = (
            f"{'scenario':<11} {'implementation':<14} {'per key':>10}  "
            f"{'x floor [IQR]':<20} {'x dloader 0.1.1 [IQR]':<20}"
        )
        if spread == "minmax":
            header = header.replace("[IQR]", "[min-max]")
        lines.append(header)
        lines.append("-" * len(header))
        for scenario in scenario_names:
            floor = results.cell(loop, scenario, FLOOR)
            old = results.cell(loop, scenario, OLD)
            for impl in impl_names:
                cell = results.cell(loop, scenario, impl)
                if cell is None:
                    continue
                values = value_summary(cell)
                assert values is not None
                per_key = f"{values['median']:.1f} {cell.unit}"
                lines.append(
                    f"{scenario:<11} {impl:<14} {per_key:>10}  "
                    f"{_ratio_text(ratio_summary(cell, floor), spread):<20} "
                    f"{_ratio_text(ratio_summary(cell, old), spread):<20}"
                )
            lines.append("")
    return "\n".join(lines)


def to_json(results: PairedResults, environment: dict[str, Any]) -> dict[str, Any]:
    cells = []
    for (loop, scenario, impl), cell in results.cells.items():
        floor = results.cell(loop, scenario, FLOOR)
        old = results.cell(loop, scenario, OLD)
        cells.append(
            {
                "loop": loop,
                "scenario": scenario,
                "implementation": impl,
                "unit": f"{cell.unit}/key",
                "keys": cell.keys,
                "per_key": value_summary(cell),
                "ratio_to_floor": ratio_summary(cell, floor),
                "ratio_to_dloader_0_1_1": ratio_summary(cell, old),
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


def write_json(path: str, results: PairedResults, environment: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(to_json(results, environment), stream, indent=1)
        stream.write("\n")
