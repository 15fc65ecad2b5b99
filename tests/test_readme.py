"""The README's Quick Start runs as written and prints what the README says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dloader

README = Path(__file__).resolve().parent.parent / "README.md"


def _quick_start() -> tuple[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick Start", 1)[1].split("\n## ", 1)[0]
    code, output = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.DOTALL)[:2]
    return code, output


def test_quick_start_runs_and_prints_what_the_readme_shows(tmp_path: Path) -> None:
    code, expected = _quick_start()
    script = tmp_path / "quick_start.py"
    script.write_text(code, encoding="utf-8")
    # The script imports the very dloader under test (the installed one in CI).
    env = {**os.environ, "PYTHONPATH": str(Path(dloader.__file__).resolve().parent.parent)}
    completed = subprocess.run(
        [sys.executable, "-P", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == expected
