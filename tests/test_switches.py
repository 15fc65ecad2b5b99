"""The DLOADER_* switches: one parser (dloader._switches), the same answer from every reader.

The package (import-time selection), setup.py (which loads the parser by file path,
without importing dloader) and this suite's conftest agree on every value, and an
invalid value is a clear error in each (README: Platforms, the pure implementation).
"""

from __future__ import annotations

import importlib
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import conftest
import pytest

from dloader import _switches

SETUP_PY = Path(__file__).resolve().parent.parent / "setup.py"

#: Each switch and the setup.py global it decides.
SETUP_GLOBALS = {
    "DLOADER_NO_EXTENSIONS": "NO_EXTENSIONS",
    "DLOADER_REQUIRE_EXTENSIONS": "REQUIRE_EXTENSIONS",
    "DLOADER_DEBUG_BUILD": "DEBUG_BUILD",
    "DLOADER_CYTHON_TRACE": "CYTHON_TRACE",
}

#: The values the parity tests try: None means unset; False means invalid.
VALUES: dict[str | None, bool] = {
    "1": True,
    "true": True,
    "TRUE": True,
    "yes": True,
    "on": True,
    " On ": True,
    "0": False,
    "": False,
    "off": False,
    None: False,
}
INVALID_VALUES = ["2", "maybe", "-1", "y"]


def _set(monkeypatch: pytest.MonkeyPatch, name: str, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)


def _setup_py_globals() -> dict[str, Any]:
    """Run setup.py's module level as setuptools would not: under a name other than __main__."""
    if not (SETUP_PY.is_file() and (SETUP_PY.parent / "dloader" / "_switches.py").is_file()):
        pytest.skip(f"no checkout with setup.py beside these tests ({SETUP_PY})")
    return runpy.run_path(str(SETUP_PY), run_name="dloader_setup_under_test")


@pytest.fixture
def fresh_dloader(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Re-import dloader (not its compiled module) from scratch; restore sys.modules afterwards."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "dloader"}

    def reimport() -> Any:
        for name in list(sys.modules):
            if name.split(".")[0] == "dloader" and name != "dloader._loader_c":
                del sys.modules[name]
        return importlib.import_module("dloader")

    try:
        yield reimport
    finally:
        for name in list(sys.modules):
            if name.split(".")[0] == "dloader":
                del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(autouse=True)
def _no_cibuildwheel(monkeypatch: pytest.MonkeyPatch) -> None:
    # setup.py also requires the extension under cibuildwheel, whose tests run this file.
    monkeypatch.delenv("CIBUILDWHEEL", raising=False)


@pytest.mark.parametrize("value", list(VALUES), ids=lambda value: "unset" if value is None else repr(value))
def test_every_reader_gives_the_same_answer(
    monkeypatch: pytest.MonkeyPatch, fresh_dloader: Any, value: str | None
) -> None:
    expected = VALUES[value]
    for name in SETUP_GLOBALS:
        _set(monkeypatch, name, value)

    assert {name: _switches.env_flag(name) for name in SETUP_GLOBALS} == dict.fromkeys(SETUP_GLOBALS, expected)
    assert conftest.no_extensions_switch() is expected
    if sys.implementation.name == "cpython":  # elsewhere setup.py and the package always go pure
        setup_globals = _setup_py_globals()
        assert {name: setup_globals[variable] for name, variable in SETUP_GLOBALS.items()} == dict.fromkeys(
            SETUP_GLOBALS, expected
        )
        dloader = fresh_dloader()
        loader_module = sys.modules["dloader._loader"]
        # The compiled module was tried exactly when the switch is false (it may still be missing).
        tried_compiled = dloader.IMPLEMENTATION == "cython" or loader_module.EXTENSION_IMPORT_ERROR is not None
        assert tried_compiled is not expected


@pytest.mark.parametrize("value", INVALID_VALUES)
@pytest.mark.parametrize("name", list(SETUP_GLOBALS))
def test_an_invalid_value_is_a_clear_error_for_every_reader(
    monkeypatch: pytest.MonkeyPatch, fresh_dloader: Any, request: pytest.FixtureRequest, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    message = rf"{name}={value!r} is not a boolean: use one of 1/true/yes/on or 0/false/no/off"

    with pytest.raises(ValueError, match=message):
        _switches.env_flag(name)
    # conftest turns it into a usage error (one line) before any test runs.
    with pytest.raises(pytest.UsageError, match=message):
        conftest._import_dloader_or_stop(request.config)
    # setup.py exits with one line naming the variable, not a traceback through setuptools.
    with pytest.raises(SystemExit, match=message):
        _setup_py_globals()
    if name == "DLOADER_NO_EXTENSIONS":  # the only switch the package itself reads
        with pytest.raises(ValueError, match=message):
            fresh_dloader()


def test_setup_py_does_not_import_dloader(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] == "dloader":
            monkeypatch.delitem(sys.modules, name)
    _setup_py_globals()
    assert not [name for name in sys.modules if name.split(".")[0] == "dloader"]


def test_the_parser_is_the_packages_and_reads_only_the_environment_given() -> None:
    assert sorted(_switches.SWITCHES) == sorted(SETUP_GLOBALS)
    assert _switches.env_flag("DLOADER_NO_EXTENSIONS", {"DLOADER_NO_EXTENSIONS": "yes"}) is True
    assert _switches.env_flag("DLOADER_NO_EXTENSIONS", {}) is False
    assert importlib.import_module("dloader._loader").env_flag is _switches.env_flag
