"""Chooses the DataLoader class at import time: compiled when possible, else pure Python.

``DLOADER_NO_EXTENSIONS`` set to a true value, or a non-CPython interpreter,
selects the pure-Python twin; type checkers always see the pure twin.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._common import env_flag

__all__ = ("EXTENSION_IMPORT_ERROR", "IMPLEMENTATION", "DataLoader")

#: Why the compiled module could not be imported (None when it was, or was not tried).
EXTENSION_IMPORT_ERROR: ImportError | None = None

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
        except ImportError as error:  # no compiler at install time, or a pure wheel
            EXTENSION_IMPORT_ERROR = error
            from ._loader_py import DataLoader

            IMPLEMENTATION = "python"
