"""One adapter per DataLoader implementation, so the same resolvers run with each.

Every implementation is used through ``load(key)`` and ``load_many(keys)`` (both
awaitable in all four), with a batch function that returns a list in key order; the
adapter is just the constructor call.

* ``dloader`` (this repository): both twins when importable, ``dloader-compiled`` and
  ``dloader-python``; falls back to ``dloader.DataLoader``.
* ``dloader-0.1.1``: the published release. Its wheel is fetched once with
  ``pip download --no-deps dloader==0.1.1`` into a cache directory, and its single
  ``dloader/__init__.py`` is imported under the module name ``dloader_0_1_1``, so it
  never shadows the ``dloader`` under test.
* ``aiodataloader`` and ``strawberry`` (``strawberry.dataloader.DataLoader``).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..implementations import OLD_DLOADER_VERSION as PEER_VERSION
from ..implementations import cache_dir, import_old_dloader
from .workload import LoaderFactory

__all__ = ("Impl", "available_impls", "load_dloader_0_1_1")


@dataclass(frozen=True)
class Impl:
    name: str
    version: str
    make: LoaderFactory | None  # None: not available (see ``missing``)
    missing: str = ""

    @property
    def available(self) -> bool:
        return self.make is not None


def default_cache_dir() -> Path:
    return cache_dir()


def load_dloader_0_1_1(directory: Path | None = None) -> ModuleType:
    """Import dloader 0.1.1 as ``dloader_0_1_1`` (its wheel downloaded once and checksummed)."""
    module: ModuleType = import_old_dloader(directory)
    return module


def _ours() -> list[Impl]:
    import dloader

    impls: list[Impl] = []
    for module_name, label in (("dloader._loader_c", "compiled"), ("dloader._loader_py", "python")):
        try:
            cls = importlib.import_module(module_name).DataLoader
        except ImportError:
            continue
        impls.append(Impl(f"dloader-{label}", dloader.__version__, _ours_factory(cls)))
    if not impls:
        label = "compiled" if dloader.IMPLEMENTATION == "cython" else "python"
        impls.append(Impl(f"dloader-{label}", dloader.__version__, _ours_factory(dloader.DataLoader)))
    return impls


def _ours_factory(cls: Any) -> LoaderFactory:
    def make(batch_fn: Any, name: str) -> Any:
        return cls(batch_fn, name=name)

    return make


def _peer_0_1_1(cache_dir: Path | None) -> Impl:
    name = f"dloader-{PEER_VERSION}"
    try:
        cls = load_dloader_0_1_1(cache_dir).DataLoader
    except Exception as error:  # no network, no pip...
        return Impl(name, PEER_VERSION, None, f"{type(error).__name__}: {error}")
    return Impl(name, PEER_VERSION, lambda batch_fn, _name: cls(batch_fn))


def _aiodataloader() -> Impl:
    try:
        import aiodataloader
    except ImportError as error:
        return Impl("aiodataloader", "-", None, str(error))
    from importlib.metadata import version

    cls = aiodataloader.DataLoader
    return Impl("aiodataloader", version("aiodataloader"), lambda batch_fn, _name: cls(batch_fn))


def _strawberry() -> Impl:
    try:
        from strawberry.dataloader import DataLoader as cls
    except ImportError as error:
        return Impl("strawberry", "-", None, str(error))
    from importlib.metadata import version

    return Impl("strawberry", version("strawberry-graphql"), lambda batch_fn, _name: cls(load_fn=batch_fn))


def available_impls(cache_dir: Path | None = None) -> list[Impl]:
    return [*_ours(), _peer_0_1_1(cache_dir), _aiodataloader(), _strawberry()]
