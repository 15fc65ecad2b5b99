"""aiodataloader's own test file, run unchanged (but for its import line) against dloader.compat.aiodataloader.

It is downloaded from the aiodataloader 0.4.3 sdist at test time (never stored in this repository).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SDIST = "aiodataloader==0.4.3"
SUITE_MEMBER = "aiodataloader-0.4.3/test_aiodataloader.py"
UPSTREAM_IMPORT = "from aiodataloader import DataLoader\n"
SHIM_IMPORT = "from dloader.compat.aiodataloader import DataLoader\n"
#: The sdist's test count; a different number means a different file, and the counts below are wrong.
UPSTREAM_TESTS = 25
#: Tests expected to fail, and why. The shim gives every load() its own future, so that one
#: caller's cancellation never cancels another's (dloader's fix of aiodataloader #44/#55); this
#: test asserts that two loads of one key return the very same future object (it checks the
#: values and the single batch call too, which hold).
EXPECTED_FAILURES = {
    "test_coalesces_identical_requests": "asserts promise1 == promise2 (the same future object); "
    "the shim returns one future per caller",
}

# Written beside the suite: marks the expected failures (strict: a pass fails the run), checks
# which DataLoader twin and loop the run uses, and records every outcome for the parent test.
CONFTEST = """
import asyncio
import json
import os

import pytest
import pytest_asyncio

import dloader

EXPECTED_FAILURES = {expected!r}
OUTCOMES = {{}}


def pytest_configure(config):
    assert dloader.IMPLEMENTATION == os.environ["COMPAT_SUITE_IMPLEMENTATION"], dloader.IMPLEMENTATION


def pytest_collection_modifyitems(items):
    for item in items:
        if item.name in EXPECTED_FAILURES:
            item.add_marker(pytest.mark.xfail(reason=EXPECTED_FAILURES[item.name], strict=True))


if os.environ["COMPAT_SUITE_LOOP"] == "uvloop":
    import uvloop

    def pytest_asyncio_loop_factories(config, item):
        return {{"uvloop": uvloop.new_event_loop}}


@pytest_asyncio.fixture(autouse=True)
async def _running_on_the_chosen_loop():
    loop_type = type(asyncio.get_running_loop())
    assert (loop_type.__module__.split(".")[0] == "uvloop") == (os.environ["COMPAT_SUITE_LOOP"] == "uvloop"), loop_type


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::")[-1]
    if report.when == "call" or report.outcome != "passed":
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        OUTCOMES.setdefault(name, outcome)


def pytest_sessionfinish(session):
    with open("outcomes.json", "w") as file:
        json.dump(OUTCOMES, file)
"""

PYTEST_INI = """[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.fixture(scope="module")
def upstream_suite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """aiodataloader's test file from its sdist, with only the import line pointed at the shim."""
    download = tmp_path_factory.mktemp("aiodataloader-sdist")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", str(download)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        result = None
    sdists = list(download.glob("aiodataloader-*.tar.gz"))
    if result is None or result.returncode != 0 or not sdists:
        reason = (
            f"could not download the {SDIST} sdist from PyPI ("
            + ("timed out" if result is None else (result.stderr.strip().splitlines() or ["no sdist"])[-1])
            + ")"
        )
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(f"{reason}; CI (the CI environment variable is set) must run aiodataloader's suite")
        pytest.skip(reason)
    with tarfile.open(sdists[0]) as archive:
        member = archive.extractfile(SUITE_MEMBER)
        assert member is not None, f"{SUITE_MEMBER} missing from the sdist"
        source = member.read().decode()
    assert source.count(UPSTREAM_IMPORT) == 1, "the suite's import line changed: review this runner"
    return source.replace(UPSTREAM_IMPORT, SHIM_IMPORT)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_aiodataloader_suite_passes_against_the_shim(
    upstream_suite: str, loader_cls: type, loop: str, tmp_path: Path
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")
    implementation = "cython" if loader_cls.__module__ == "dloader._loader_c" else "python"
    (tmp_path / "test_aiodataloader.py").write_text(upstream_suite)
    (tmp_path / "conftest.py").write_text(CONFTEST.format(expected=EXPECTED_FAILURES))
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    env = dict(os.environ, COMPAT_SUITE_IMPLEMENTATION=implementation, COMPAT_SUITE_LOOP=loop)
    env.pop("DLOADER_NO_EXTENSIONS", None)
    if implementation == "python":
        env["DLOADER_NO_EXTENSIONS"] = "1"
    result = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_aiodataloader.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    outcomes = json.loads((tmp_path / "outcomes.json").read_text())
    assert len(outcomes) == UPSTREAM_TESTS, report
    expected = {name: "xfailed" if name in EXPECTED_FAILURES else "passed" for name in outcomes}
    assert outcomes == expected, report
    assert sum(outcome == "passed" for outcome in outcomes.values()) == UPSTREAM_TESTS - len(EXPECTED_FAILURES)
