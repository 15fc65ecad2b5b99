"""Which DataLoader class ``import dloader`` picks (README: API), re-imported under a patched environment.

The compiled extension module itself is never evicted from ``sys.modules``:
a Cython module with multi-phase init cannot be initialised twice per process.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dloader._switches import env_flag

EXTENSION = "dloader._loader_c"


def _compiled_importable() -> bool:
    try:
        importlib.import_module(EXTENSION)
    except ImportError:
        return False
    return True


COMPILED_IMPORTABLE = _compiled_importable()


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Re-import dloader from scratch; restore sys.modules exactly afterwards."""
    saved = {name: module for name, module in sys.modules.items() if name == "dloader" or name.startswith("dloader.")}

    def reimport() -> types.ModuleType:
        for name in list(sys.modules):
            if (name == "dloader" or name.startswith("dloader.")) and name != EXTENSION:
                del sys.modules[name]
        return importlib.import_module("dloader")

    try:
        yield reimport
    finally:
        for name in list(sys.modules):
            if name == "dloader" or name.startswith("dloader."):
                del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True", "yes", "YES", "on", "On", " 1 "])
def test_true_values_select_pure_python(monkeypatch: pytest.MonkeyPatch, fresh_import: Any, value: str) -> None:
    monkeypatch.setenv("DLOADER_NO_EXTENSIONS", value)
    dloader = fresh_import()
    assert dloader.IMPLEMENTATION == "python"
    assert dloader.DataLoader.__module__ == "dloader._loader_py"
    assert dloader.DataLoader is sys.modules["dloader._loader_py"].DataLoader


@pytest.mark.parametrize("value", ["0", "", "false", "FALSE", "no", "off", None])
def test_false_values_select_compiled_when_available(
    monkeypatch: pytest.MonkeyPatch, fresh_import: Any, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("DLOADER_NO_EXTENSIONS", raising=False)
    else:
        monkeypatch.setenv("DLOADER_NO_EXTENSIONS", value)
    dloader = fresh_import()
    loader_module = sys.modules["dloader._loader"]
    if COMPILED_IMPORTABLE and sys.implementation.name == "cpython":
        assert dloader.IMPLEMENTATION == "cython"
        assert dloader.DataLoader is sys.modules[EXTENSION].DataLoader
        assert loader_module.EXTENSION_IMPORT_ERROR is None
    else:
        assert dloader.IMPLEMENTATION == "python"
        assert dloader.DataLoader.__module__ == "dloader._loader_py"
        if sys.implementation.name == "cpython":
            assert isinstance(loader_module.EXTENSION_IMPORT_ERROR, ImportError)


def test_missing_extension_falls_back_with_the_reason(monkeypatch: pytest.MonkeyPatch, fresh_import: Any) -> None:
    monkeypatch.delenv("DLOADER_NO_EXTENSIONS", raising=False)
    # A None entry in sys.modules makes the import fail, as a missing .so does.
    monkeypatch.setitem(sys.modules, EXTENSION, None)
    dloader = fresh_import()
    assert dloader.IMPLEMENTATION == "python"
    assert isinstance(sys.modules["dloader._loader"].EXTENSION_IMPORT_ERROR, ImportError)


def test_non_cpython_selects_pure_python(monkeypatch: pytest.MonkeyPatch, fresh_import: Any) -> None:
    monkeypatch.delenv("DLOADER_NO_EXTENSIONS", raising=False)
    implementation = types.SimpleNamespace(**vars(sys.implementation))
    implementation.name = "pypy"
    monkeypatch.setattr(sys, "implementation", implementation)
    dloader = fresh_import()
    assert dloader.IMPLEMENTATION == "python"


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch, fresh_import: Any) -> None:
    monkeypatch.setenv("DLOADER_NO_EXTENSIONS", "maybe")
    with pytest.raises(ValueError, match="DLOADER_NO_EXTENSIONS"):
        fresh_import()


def test_both_twins_importable_by_module_name(monkeypatch: pytest.MonkeyPatch, fresh_import: Any) -> None:
    monkeypatch.setenv("DLOADER_NO_EXTENSIONS", "1")
    fresh_import()
    assert importlib.import_module("dloader._loader_py").DataLoader.__name__ == "DataLoader"
    if COMPILED_IMPORTABLE:
        assert importlib.import_module(EXTENSION).DataLoader.__name__ == "DataLoader"


def test_sys_modules_restored_after_reimport(fresh_import: Any) -> None:
    import dloader

    before = dloader.DataLoader
    fresh_import()
    assert sys.modules["dloader"] is not dloader or sys.modules["dloader"].DataLoader is before


@pytest.mark.skipif(
    not env_flag("DLOADER_REQUIRE_EXTENSIONS"),
    reason="DLOADER_REQUIRE_EXTENSIONS is not set (CI and wheel tests set it)",
)
def test_extension_was_built_when_required() -> None:
    import dloader
    import dloader._loader

    assert dloader._loader.EXTENSION_IMPORT_ERROR is None, dloader._loader.EXTENSION_IMPORT_ERROR
    assert dloader.IMPLEMENTATION == "cython"
    assert dloader.DataLoader is importlib.import_module(EXTENSION).DataLoader


# ---------------------------------------------------------------- a source tree shadowing the installed package


def _import_in_subprocess(path: list[Path], cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path)), **environ}
    if "DLOADER_NO_EXTENSIONS" not in environ:
        env.pop("DLOADER_NO_EXTENSIONS", None)
    code = "import dloader, dloader._loader_py, dloader._loader; print(dloader.IMPLEMENTATION, dloader.__file__)"
    # -S: only the given path, no .pth files (an editable install's import hook would otherwise
    # hand the source tree the compiled module of the checkout it points to).
    # -W always: the count the tests check is what dloader emits, not what the registry lets through.
    return subprocess.run(
        [sys.executable, "-P", "-S", "-W", "always", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


needs_compiled = pytest.mark.skipif(
    not COMPILED_IMPORTABLE or sys.implementation.name != "cpython", reason="the compiled module is not importable here"
)


@needs_compiled
def test_a_source_tree_shadowing_the_compiled_package_warns_once(
    tmp_path: Path, source_tree_without_extension: Path
) -> None:
    import dloader

    installed = Path(dloader.__file__).parent
    tree = source_tree_without_extension
    run = _import_in_subprocess([tree, installed.parent], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == "python"
    assert run.stderr.count("ShadowedExtensionWarning") == 1, run.stderr
    assert str(tree / "dloader") in run.stderr and str(installed) in run.stderr
    assert "python -P" in run.stderr


@needs_compiled
def test_no_warning_without_shadowing_or_when_pure_is_asked_for(
    tmp_path: Path, source_tree_without_extension: Path
) -> None:
    import dloader

    installed = Path(dloader.__file__).parent
    run = _import_in_subprocess([installed.parent], cwd=tmp_path)
    assert (run.returncode, run.stdout.split()[0], run.stderr) == (0, "cython", "")

    tree = source_tree_without_extension
    run = _import_in_subprocess([tree, installed.parent], cwd=tmp_path, DLOADER_NO_EXTENSIONS="1")
    assert (run.returncode, run.stdout.split()[0], run.stderr) == (0, "python", "")


def test_no_warning_when_no_compiled_copy_exists_anywhere(tmp_path: Path, source_tree_without_extension: Path) -> None:
    # The source tree alone (a checkout, nothing installed): pure, silently.
    tree = source_tree_without_extension
    env = {key: value for key, value in os.environ.items() if key != "DLOADER_NO_EXTENSIONS"}
    code = "import dloader; print(dloader.IMPLEMENTATION, dloader.__file__)"
    # -S -I: no site-packages, so no installed dloader to shadow.
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-W", "always", "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); {code}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["python", str(tree / "dloader" / "__init__.py")]
    assert run.stderr == ""
