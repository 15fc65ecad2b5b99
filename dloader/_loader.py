"""Chooses the DataLoader class at import time: compiled when possible, else pure Python.

``DLOADER_NO_EXTENSIONS`` set to a true value, or a non-CPython interpreter,
selects the pure-Python twin; type checkers always see the pure twin. When the
compiled module is missing here but present in another dloader further down
``sys.path`` (a source tree shadowing the installed package), a
ShadowedExtensionWarning says so once, instead of running slower in silence.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES
from typing import TYPE_CHECKING

from ._switches import env_flag

__all__ = ("EXTENSION_IMPORT_ERROR", "IMPLEMENTATION", "DataLoader", "ShadowedExtensionWarning")

#: Why the compiled module could not be imported (None when it was, or was not tried).
EXTENSION_IMPORT_ERROR: ImportError | None = None


class ShadowedExtensionWarning(RuntimeWarning):
    """This dloader has no compiled module, but another one on sys.path has."""


def _compiled_copy_elsewhere() -> str | None:
    """The package directory of another dloader on sys.path that holds the compiled module, if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        try:
            package = os.path.join(entry or os.getcwd(), "dloader")
            if os.path.samefile(package, here):
                continue
        except (OSError, TypeError):  # no dloader there, a zip file, a deleted cwd, a non-str entry
            continue
        if any(os.path.isfile(os.path.join(package, "_loader_c" + suffix)) for suffix in EXTENSION_SUFFIXES):
            return package
    return None


def _warn_if_shadowing() -> None:
    installed = _compiled_copy_elsewhere()
    if installed is None:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    warnings.warn(
        f"dloader was imported from {here}, which has no compiled module, while {installed} has one: "
        "this process runs the slower pure-Python implementation. A source tree is first on sys.path "
        "(the current directory or PYTHONPATH); run from another directory, with `python -P`, "
        "or through the installed commands (`dloader-demo`, `pytest`).",
        ShadowedExtensionWarning,
        stacklevel=2,
    )


if TYPE_CHECKING:
    from ._loader_py import DataLoader

    IMPLEMENTATION: str = "python"
else:
    if env_flag("DLOADER_NO_EXTENSIONS") or sys.implementation.name != "cpython":
        from ._loader_py import DataLoader

        IMPLEMENTATION = "python"
    else:
        try:
            from ._loader_c import DataLoader

            IMPLEMENTATION = "cython"
        except ImportError as error:  # no compiler at install time, a pure wheel, or a source tree
            EXTENSION_IMPORT_ERROR = error
            from ._loader_py import DataLoader

            IMPLEMENTATION = "python"
            _warn_if_shadowing()
