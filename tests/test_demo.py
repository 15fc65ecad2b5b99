"""The demo (``dloader-demo``, ``python -m dloader.demo``): batches, gives equal results, names the
implementation that ran and explains a missing extra in one line."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("graphql")

import dloader
from dloader import demo

# The demo query touches 4 loaders, each at one dependency level: root SELECT + 4 batches.
EXPECTED_STATEMENTS_WITH_DLOADER = 5


def _statements(output: str, label: str) -> int:
    match = re.search(rf"^{label}\s+(\d+)\s+[\d.]+ ms$", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match.group(1))


def test_main_prints_counts_timings_and_equality(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--latency-ms", "0"]) == 0
    output = capsys.readouterr().out
    with_dloader = _statements(output, "with dloader")
    without = _statements(output, "without dloader")
    assert with_dloader == EXPECTED_STATEMENTS_WITH_DLOADER
    assert without > 20 * with_dloader
    assert "results equal: yes" in output
    assert "authors 1, books_by_author 1, reviews_by_book 1, users 1" in output


def test_each_twin_batches_one_round_trip_per_loader(loader_cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DataLoader", loader_cls)
    result = demo.run_demo(latency_ms=0.05)
    assert result.equal
    assert result.with_dloader.statements == EXPECTED_STATEMENTS_WITH_DLOADER
    assert result.with_dloader.round_trips == {"authors": 1, "books_by_author": 1, "reviews_by_book": 1, "users": 1}
    assert result.without_dloader.statements > 20 * result.with_dloader.statements
    books = result.with_dloader.data["books"]
    assert len(books) == 80 and all(book["author"]["books"] for book in books)


def _subprocess_env() -> dict[str, str]:
    # The dloader the tests imported (installed, or the source tree), first on the path.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(dloader.__file__).parent.parent), env.get("PYTHONPATH", "")])
    return env


def test_imports_only_graphql_stdlib_and_dloader(tmp_path: Path) -> None:
    code = (
        "import sys, dloader; before = set(sys.modules); import dloader.demo; "
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_subprocess_env(), capture_output=True, text=True, check=True
    )
    third_party = set(run.stdout.split()) - set(sys.stdlib_module_names) - {"graphql", "dloader"}
    assert not third_party, f"dloader.demo imported {sorted(third_party)}"


def test_running_without_graphql_core_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import runpy, sys; sys.modules['graphql'] = None; "
        "runpy.run_module('dloader.demo', run_name='__main__', alter_sys=True)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_subprocess_env(), capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "pip install graphql-core" in run.stderr
    assert "Traceback" not in run.stderr


def test_importing_without_graphql_core_raises_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphql", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "dloader.demo")
    with pytest.raises(ImportError, match=re.escape("pip install graphql-core")):
        importlib.import_module("dloader.demo")


# ---------------------------------------------------------------- the commands a user runs


def _console_script() -> Path:
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("dloader-demo", "dloader-demo.exe"):
        if (scripts / name).is_file():
            return scripts / name
    pytest.skip(f"the dloader-demo command is not installed in {scripts} (tests run on a source tree?)")


def _expected_implementation() -> str:
    return "compiled" if dloader.IMPLEMENTATION == "cython" else "python"


def test_console_script_runs_and_names_the_implementation(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(_console_script()), "--latency-ms", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    first_line = run.stdout.splitlines()[0]
    assert first_line.startswith(f"dloader {dloader.__version__}, implementation: {_expected_implementation()} (")
    assert "results equal: yes" in run.stdout
    if os.environ.get("DLOADER_REQUIRE_EXTENSIONS", "").strip() == "1":
        assert "implementation: compiled" in first_line


def test_console_script_without_graphql_core_says_what_to_install(tmp_path: Path) -> None:
    # A graphql module that cannot be imported, first on the path: as if the extra were missing.
    (tmp_path / "graphql.py").write_text("raise ImportError('graphql-core is hidden by this test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = subprocess.run([str(_console_script())], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "dloader.demo needs graphql-core, which is not installed: "
        "pip install graphql-core (in a checkout of dloader: pip install '.[demo]')"
    ]


def test_python_m_dloader_demo_still_runs(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-P", "-m", "dloader.demo", "--latency-ms", "0"],
        cwd=tmp_path,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert f"implementation: {_expected_implementation()} (from {Path(dloader.__file__).parent})" in run.stdout
    assert "results equal: yes" in run.stdout


def test_redis_flag_serves_a_second_process_from_the_shared_cache(redis_server: Any) -> None:
    """dloader-demo --redis URL: two new processes; the second makes only the root query."""
    run = subprocess.run(
        [sys.executable, "-m", "dloader.demo", "--latency-ms", "0", "--redis", redis_server.url],
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.endswith(")") and "process" in line}
    assert "5 SQL statements" in lines["first"]
    assert "authors 1, books_by_author 1, reviews_by_book 1, users 1" in lines["first"]
    assert "1 SQL statements (load_fn calls: none)" in lines["second"]
    assert "results equal: yes; the second process read the loaders' rows from Redis" in run.stdout
