"""One adapter per DataLoader implementation, so the same resolvers run with each.

Every implementation is used through ``load(key)`` and ``load_many(keys)`` (both
awaitable in all four), with a batch function that returns a list in key order; the
adapter is just the constructor call.

* ``dloader`` (this repository): both twins when importable, ``dloader-cython`` and
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
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .workload import LoaderFactory

__all__ = ("Impl", "available_impls", "load_dloader_0_1_1")

PEER_VERSION = "0.1.1"


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
    env = os.environ.get("DLOADER_BENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dloader-bench"


def load_dloader_0_1_1(cache_dir: Path | None = None) -> ModuleType:
    """Import dloader 0.1.1 as ``dloader_0_1_1`` (downloading its wheel once if needed)."""
    if "dloader_0_1_1" in sys.modules:
        return sys.modules["dloader_0_1_1"]
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = cache_dir / f"dloader_{PEER_VERSION.replace('.', '_')}.py"
    if not source.exists():
        wheel = cache_dir / f"dloader-{PEER_VERSION}-py3-none-any.whl"
        if not wheel.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    f"dloader=={PEER_VERSION}",
                    "-d",
                    str(cache_dir),
                ],
                check=True,
            )
        with zipfile.ZipFile(wheel) as archive:
            source.write_bytes(archive.read("dloader/__init__.py"))
    spec = importlib.util.spec_from_file_location("dloader_0_1_1", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dloader_0_1_1"] = module
    spec.loader.exec_module(module)
    return module


def _ours() -> list[Impl]:
    import dloader

    impls: list[Impl] = []
    for module_name, label in (("dloader._loader_c", "cython"), ("dloader._loader_py", "python")):
        try:
            cls = importlib.import_module(module_name).DataLoader
        except ImportError:
            continue
        impls.append(Impl(f"dloader-{label}", dloader.__version__, _ours_factory(cls)))
    if not impls:
        impls.append(Impl(f"dloader-{dloader.IMPLEMENTATION}", dloader.__version__, _ours_factory(dloader.DataLoader)))
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
