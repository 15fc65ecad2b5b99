"""Drop-in replacements for other DataLoader libraries, built on dloader's engine.

Switch by changing one import: ``dloader.compat.strawberry`` stands in for
``strawberry.dataloader`` and ``dloader.compat.aiodataloader`` for ``aiodataloader``
(upstream dloader 2025.7's ``dloader.dataloader`` path works as it is). Each module's
docstring lists what still differs from the library it replaces.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

__all__ = ("core_class", "shim_module")

_SHIMS = ("strawberry", "aiodataloader")
_twin_modules: dict[tuple[str, Any], ModuleType] = {}


def core_class(namespace: dict[str, Any]) -> Any:
    """The DataLoader class a shim module builds on: the selected twin, or the one shim_module() asked for."""
    chosen = namespace.get("_CORE_CLASS")
    if chosen is not None:
        return chosen
    from .._loader import DataLoader

    return DataLoader


def shim_module(name: str, core: Any) -> ModuleType:
    """A private copy of ``dloader.compat.<name>`` whose DataLoader subclasses ``core`` (tests use it per twin).

    ``dloader.compat.<name>`` itself builds on the implementation dloader selected
    (compiled when available); this gives the same shim on the other twin.
    """
    if name not in _SHIMS:
        raise ValueError(f"unknown compat module {name!r}; expected one of {', '.join(_SHIMS)}")
    cached = _twin_modules.get((name, core))
    if cached is not None:
        return cached
    spec = importlib.util.find_spec(f"dloader.compat.{name}")
    if spec is None or spec.loader is None:  # pragma: no cover -- the package ships both modules
        raise ImportError(f"dloader.compat.{name} is not installed")
    module = importlib.util.module_from_spec(spec)
    module._CORE_CLASS = core  # type: ignore[attr-defined]  # read by core_class() as the module executes
    spec.loader.exec_module(module)
    _twin_modules[(name, core)] = module
    return module
