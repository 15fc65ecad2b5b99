"""What a newcomer runs from a checkout: the README's first two commands, and ``python -m pytest``.

``pytest`` from the checkout tests the installed package; ``python -m pytest`` puts the
source tree first on sys.path and, when that tree has no compiled module while the
installed dloader has one, stops at once with one line saying what to run instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

import dloader

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"

README_COMMANDS = [
    "pip install '.[demo]' && dloader-demo",
    "pip install '.[test]' && pytest",
]


def test_the_readmes_first_code_block_is_the_two_commands() -> None:
    first_block = re.search(r"```[a-z]*\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert first_block is not None
    commands = [line.split("#", 1)[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == README_COMMANDS


def test_the_version_is_calendar_versioned_above_upstreams_last_release() -> None:
    # PyPI's dloader 2025.7 is an unrelated upstream project: ours must sort above it.
    parts = dloader.__version__.split(".")
    assert len(parts) == 3 and all(part.isdigit() for part in parts), dloader.__version__
    assert tuple(map(int, parts)) > (2025, 7)
    try:
        installed = metadata.version("dloader")
    except metadata.PackageNotFoundError:
        pytest.skip("dloader is not installed (tests imported a source tree)")
    assert installed == dloader.__version__


def _site_path() -> list[str]:
    # The installed package under test first, then the environment's site-packages.
    paths = [str(Path(dloader.__file__).parent.parent)]
    for name in ("purelib", "platlib"):
        if sysconfig.get_paths()[name] not in paths:
            paths.append(sysconfig.get_paths()[name])
    return paths


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="only CPython has the compiled module")
def test_python_m_pytest_from_a_shadowing_checkout_stops_with_one_line(source_tree_without_extension: Path) -> None:
    try:
        import dloader._loader_c
    except ImportError:
        pytest.skip("the compiled module is not importable here: nothing to shadow")
    tree = source_tree_without_extension
    (tree / "tests").mkdir()
    for name in ("conftest.py", "redis_support.py", "redis_process.py", "test_api.py", "test_selection.py"):
        shutil.copy2(HERE / name, tree / "tests" / name)
    shutil.copy2(HERE.parent / "pyproject.toml", tree / "pyproject.toml")
    # No DLOADER_* switches: the runs below choose with their own options (CI sets REQUIRE).
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLOADER_")}
    env["PYTHONPATH"] = os.pathsep.join(_site_path())
    # -S with site-packages on PYTHONPATH: an editable install's import hook (a .pth file) would
    # otherwise hand the copied tree the compiled module of the checkout it points to.
    args = ["-S", "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/test_api.py"]

    shadowed = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in (shadowed.stdout + shadowed.stderr).splitlines() if line.strip()]
    assert shadowed.returncode == pytest.ExitCode.USAGE_ERROR, shadowed.stdout + shadowed.stderr
    assert len(lines) == 1, lines
    assert str(tree / "dloader") in lines[0]
    assert "run `pytest` or `python -P -m pytest`" in lines[0]

    # What the line advises works from the same directory.
    advised = subprocess.run(
        [sys.executable, "-P", *args], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )
    assert advised.returncode == pytest.ExitCode.OK, advised.stdout[-3000:] + advised.stderr[-3000:]
    assert " passed" in advised.stdout

    # Testing the source tree's pure twin on purpose (--no-extensions) goes on, and tests that
    # re-import dloader (so the selector warns again) do not fail under filterwarnings = error.
    pure = subprocess.run(
        [sys.executable, "-S", "-m", "pytest", "-p", "no:cacheprovider", "--no-extensions", "tests"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pure.returncode == pytest.ExitCode.OK, pure.stdout[-3000:] + pure.stderr[-3000:]
    assert f"dloader {dloader.__version__} from {tree / 'dloader'}" in pure.stdout
    assert "note: dloader was imported from" in pure.stdout


def _cited_texts() -> dict[Path, str]:
    """The tests' sources and the benchmark docs and sources that exist beside these tests."""
    root = HERE.parent
    paths = [*HERE.glob("*.py"), *root.glob("benchmarks/**/*.py"), *root.glob("benchmarks/**/*.md")]
    return {path: path.read_text(encoding="utf-8") for path in paths if path != Path(__file__).resolve()}


def test_tests_and_benchmarks_cite_the_readme_not_a_file_outside_the_repository() -> None:
    readme = README.read_text(encoding="utf-8")
    semantics = readme.split("\n## Semantics\n", 1)[1].split("\n## ", 1)[0]
    headings = set(re.findall(r"^\*\*([^*]+?)\.\*\*", semantics, flags=re.MULTILINE))
    cited: set[str] = set()
    for path, text in _cited_texts().items():
        assert not re.search(r"\bSPEC\b", text), f"{path} cites SPEC, a file outside the repository"
        cited.update(re.findall(r"README, Semantics: ([A-Z][a-z]+(?: [a-z]+)*)", text))
    assert cited, "no README, Semantics citations found"
    assert cited <= headings, f"cited {sorted(cited - headings)}, the README's Semantics has {sorted(headings)}"
