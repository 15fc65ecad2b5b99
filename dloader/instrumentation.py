"""The instrumentation protocol: hooks a loader calls at load() time and around each load_fn call.

Placeholder until the full protocol module lands; the core reads ``get_default()`` when a
loader is created.
"""

from __future__ import annotations

from typing import Any

_default: Any = None


def set_default(instrumentation: Any) -> None:
    global _default
    _default = instrumentation


def get_default() -> Any:
    return _default
