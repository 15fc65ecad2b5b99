"""The loaders under test: our two classes, the floor written here, and published peers.

Each implementation is an ``Implementation`` whose ``new(kind, load_fn, max_batch_size)``
builds a loader inside the running loop; peers are imported lazily, a missing one is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------
# The floor
#
# The least work any loader that returns futures must do for a scenario, written as
# plainly as possible so that every other figure can be read as a ratio to it:
#
#   * one ``loop.create_future()`` per ``load()`` call (every caller gets its own future,
#     as dloader promises: README, Semantics: Futures and cancellation);
#   * one scheduled callback per batch: the batch task created at the first key of a batch
#     (a task is the least that can drive an ``async def load_fn`` that may really await);
#   * one ``load_fn`` call per batch, with a new list of keys;
#   * one ``set_result`` per ``load()`` call.
#
# and, per scenario, nothing more than the scenario strictly needs:
#
#   gather, awaited one by one, load_many, tree, memory   FloorLoader: no dedup, no cache
#   max_batch_size                                      FloorBatchedLoader: + a length check
#   duplicates                                          FloorDedupLoader: + a dict of waiters
#   cache hits                                          FloorCachedLoader: a dict lookup,
#                                                       create_future, set_result
#
# It binds to the running loop at construction (the benchmarks build it inside the loop),
# never checks whether a future was cancelled, never handles errors, keeps no reference to
# its batch task and has no shutdown: it is a yardstick, not a loader anyone should use.
# ``load_many`` is ``asyncio.gather`` of floor loads, as the peers do it.
# --------------------------------------------------------------------------------------


class _NoCacheFloor:
    """What the floors without a cache share: load_many is a gather of their loads."""

    __slots__ = ()

    def load_many(self, keys: Any) -> asyncio.Future[list[Any]]:
        return asyncio.gather(*map(self.load, keys))

    def prime(self, key: Any, value: Any) -> None:
        raise NotImplementedError("this floor has no cache")


class FloorLoader(_NoCacheFloor):
    """Distinct keys, no cache, no de-duplication."""

    __slots__ = ("_create_future", "_create_task", "_futures", "_keys", "_load_fn")

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._load_fn = load_fn
        self._create_future = loop.create_future
        self._create_task = loop.create_task
        self._keys: list[Any] | None = None  # the open batch, None when nothing is queued
        self._futures: list[asyncio.Future[Any]] = []

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        keys = self._keys
        if keys is None:  # first key of a batch: schedule its dispatch
            keys = self._keys = []
            futures = self._futures = []
            self._create_task(self._dispatch(keys, futures))
        else:
            futures = self._futures
        keys.append(key)
        futures.append(future)
        return future

    async def _dispatch(self, keys: list[Any], futures: list[asyncio.Future[Any]]) -> None:
        if self._keys is keys:  # close the batch: later loads start a new one
            self._keys = None
        values = await self._load_fn(keys)
        for future, value in zip(futures, values):
            future.set_result(value)


class FloorBatchedLoader(FloorLoader):
    """FloorLoader plus ``max_batch_size``: a full batch is closed and a new one started."""

    __slots__ = ("_max_batch_size",)

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        super().__init__(load_fn)
        assert max_batch_size is not None
        self._max_batch_size = max_batch_size

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        keys = self._keys
        if keys is None or len(keys) == self._max_batch_size:
            keys = self._keys = []
            futures = self._futures = []
            self._create_task(self._dispatch(keys, futures))
        else:
            futures = self._futures
        keys.append(key)
        futures.append(future)
        return future


class FloorDedupLoader(_NoCacheFloor):
    """Duplicated keys: each key reaches ``load_fn`` once, each caller gets its own future."""

    __slots__ = ("_create_future", "_create_task", "_load_fn", "_waiters")

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._load_fn = load_fn
        self._create_future = loop.create_future
        self._create_task = loop.create_task
        # key -> the futures of its callers, in first-request order; None: nothing queued
        self._waiters: dict[Any, list[asyncio.Future[Any]]] | None = None

    def load(self, key: Any) -> asyncio.Future[Any]:
        future = self._create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = {}
            self._create_task(self._dispatch(waiters))
        same_key = waiters.get(key)
        if same_key is None:
            waiters[key] = [future]
        else:
            same_key.append(future)
        return future

    async def _dispatch(self, waiters: dict[Any, list[asyncio.Future[Any]]]) -> None:
        if self._waiters is waiters:
            self._waiters = None
        values = await self._load_fn(list(waiters))
        for futures, value in zip(waiters.values(), values):
            for future in futures:
                future.set_result(value)


class FloorCachedLoader(FloorLoader):
    """Cache hits: one dict lookup, one create_future, one set_result.

    A miss falls through to the plain floor and is not written back (the scenario only
    ever hits primed keys, so writing back is work it does not need).
    """

    __slots__ = ("_cache",)

    def __init__(self, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> None:
        super().__init__(load_fn)
        self._cache: dict[Any, Any] = {}

    def load(self, key: Any) -> asyncio.Future[Any]:
        try:
            value = self._cache[key]
        except KeyError:
            return FloorLoader.load(self, key)
        future = self._create_future()
        future.set_result(value)
        return future

    def prime(self, key: Any, value: Any) -> None:
        self._cache[key] = value


FLOOR_CLASSES: dict[str, type] = {
    "plain": FloorLoader,
    "batched": FloorBatchedLoader,
    "dedup": FloorDedupLoader,
    "cached": FloorCachedLoader,
}

# --------------------------------------------------------------------------------------
# dloader 0.1.1 from PyPI, imported under another module name
# --------------------------------------------------------------------------------------

OLD_DLOADER_VERSION = "0.1.1"
OLD_DLOADER_MODULE = "dloader_0_1_1"
OLD_DLOADER_WHEEL = "dloader-0.1.1-py3-none-any.whl"
# The wheel PyPI serves; a different file is refused rather than benchmarked.
OLD_DLOADER_SHA256 = "ceecb3cca55765ab4136eecda8c43b52fbaf2af5e01141d9ff754051903adbc2"


def cache_dir() -> Path:
    return Path(os.environ.get("DLOADER_BENCH_CACHE", Path(__file__).parent / ".cache"))


def _fetch_old_dloader(directory: Path | None = None) -> Path:
    """Return the path of 0.1.1's ``dloader/__init__.py``, downloading the wheel once."""
    directory = directory or cache_dir()
    source = directory / f"dloader-{OLD_DLOADER_VERSION}" / "dloader" / "__init__.py"
    if source.is_file():
        return source
    wheel = directory / OLD_DLOADER_WHEEL
    if not wheel.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            f"dloader=={OLD_DLOADER_VERSION}",
            "-d",
            str(directory),
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if completed.returncode != 0 or not wheel.is_file():
            raise ImportError("pip download failed: " + (completed.stderr.strip()[-300:] or "?"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != OLD_DLOADER_SHA256:
        raise ImportError(f"{wheel} has sha256 {digest}, expected {OLD_DLOADER_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("dloader/__init__.py")
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(text)
    return source


def import_old_dloader(directory: Path | None = None) -> Any:
    """Import 0.1.1 as ``dloader_0_1_1``; it never shadows the ``dloader`` under test."""
    if OLD_DLOADER_MODULE in sys.modules:
        return sys.modules[OLD_DLOADER_MODULE]
    path = _fetch_old_dloader(directory)
    spec = importlib.util.spec_from_file_location(OLD_DLOADER_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[OLD_DLOADER_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[OLD_DLOADER_MODULE]
        raise
    return module


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------


class Implementation:
    """One loader class under test, resolved lazily (pyperf workers import only theirs)."""

    def __init__(self, name: str, description: str, resolve: Callable[[], Any]) -> None:
        self.name = name
        self.description = description
        self._resolve = resolve
        self._loader_class: Any = None
        self.skip_reason: str | None = None
        self.origin = ""

    def available(self) -> bool:
        if self._loader_class is None and self.skip_reason is None:
            try:
                self._loader_class = self._resolve()
            except Exception as error:  # ImportError, pip failure, checksum mismatch
                self.skip_reason = f"{type(error).__name__}: {error}"
            else:
                module = sys.modules.get(getattr(self._loader_class, "__module__", ""), None)
                self.origin = getattr(module, "__file__", "") or ""
        return self._loader_class is not None

    @property
    def loader_class(self) -> Any:
        return self._loader_class

    def new(self, kind: str, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> Any:
        """A fresh loader, built inside the running loop. ``kind`` picks the floor variant."""
        if self.name == "floor":
            return FLOOR_CLASSES[kind](load_fn, max_batch_size)
        return self._loader_class(load_fn, max_batch_size=max_batch_size)

    def __repr__(self) -> str:
        return f"Implementation({self.name!r})"


def _our_class(module_name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        return importlib.import_module(module_name).DataLoader

    return resolve


def _attribute(module_name: str, attribute: str) -> Callable[[], Any]:
    def resolve() -> Any:
        return getattr(importlib.import_module(module_name), attribute)

    return resolve


def _old_dloader() -> Any:
    return import_old_dloader().DataLoader


def _floor() -> Any:
    return FloorLoader


#: Column order of every table.
ALL_IMPLEMENTATIONS: tuple[tuple[str, str, Callable[[], Any]], ...] = (
    ("compiled", "dloader._loader_c.DataLoader (Cython)", _our_class("dloader._loader_c")),
    ("python", "dloader._loader_py.DataLoader (pure Python)", _our_class("dloader._loader_py")),
    ("floor", "the floor written in benchmarks/implementations.py", _floor),
    ("dloader-0.1.1", "dloader 0.1.1 from PyPI, imported as dloader_0_1_1", _old_dloader),
    ("aiodataloader", "aiodataloader.DataLoader", _attribute("aiodataloader", "DataLoader")),
    ("strawberry", "strawberry.dataloader.DataLoader", _attribute("strawberry.dataloader", "DataLoader")),
)

IMPLEMENTATION_NAMES = tuple(name for name, _, _ in ALL_IMPLEMENTATIONS)
FLOOR = "floor"
OLD = "dloader-0.1.1"


def make_implementations(names: list[str] | tuple[str, ...] | None = None) -> list[Implementation]:
    wanted = set(names or IMPLEMENTATION_NAMES)
    return [
        Implementation(name, description, resolve)
        for name, description, resolve in ALL_IMPLEMENTATIONS
        if name in wanted
    ]
