"""The one parser of dloader's environment switches (DLOADER_NO_EXTENSIONS and the build switches).

It imports nothing from the package, so ``setup.py`` loads this file by path
(without importing dloader) and the package, the tests and the benchmarks
import it: every reader gives the same answer for every value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ("FALSE_VALUES", "SWITCHES", "TRUE_VALUES", "env_flag")

#: Spellings of true and false, compared after stripping blanks and lower-casing.
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})

#: The switches dloader reads, with what a true value does.
SWITCHES = {
    "DLOADER_NO_EXTENSIONS": "import (and build) the pure-Python implementation only",
    "DLOADER_REQUIRE_EXTENSIONS": "fail the build if the compiled extension does not compile",
    "DLOADER_DEBUG_BUILD": "build the extension with -O0 -g and Cython's internal checks",
    "DLOADER_CYTHON_TRACE": "build the extension with line tracing, for coverage of the .pyx",
}


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Read a boolean switch: ``1/true/yes/on`` are true, ``0/false/no/off``, empty or unset false.

    Any other value raises ValueError naming the variable and the accepted
    values: a typo such as ``DLOADER_NO_EXTENSIONS=2`` must not silently mean
    one thing to the build and another to the import.
    """
    environment = os.environ if environ is None else environ
    raw = environment.get(name, "")
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ValueError(
        f"environment variable {name}={raw!r} is not a boolean: use one of 1/true/yes/on or 0/false/no/off"
    )
