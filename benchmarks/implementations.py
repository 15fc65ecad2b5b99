"""What is measured: which dloader is imported, the one list of loaders every mode uses, the loops.

Floor, both twins, published peers, the compat shims and observability variants of the twins
(``compiled+stats``, ``compiled+otel`` ...); each is resolved lazily and skipped with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .floor import FLOOR_CLASSES, FloorLoader

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOP_NAMES = ("asyncio", "uvloop")

# ------------------------------------------------------------------------------ which dloader


def _same_directory(entry: str, directory: Path) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == directory
    except OSError:
        return False


def select_dloader(source_tree: bool) -> str:
    """Make ``import dloader`` find the installed package rather than the checkout.

    Run from the repository root, ``sys.path`` starts with the root, where ``dloader/`` is the
    source tree (no compiled module unless built in place). When dloader is installed
    elsewhere, the root is taken off ``sys.path``. Returns a sentence saying what was chosen.
    """
    if "dloader" in sys.modules:
        return "dloader was already imported"
    if source_tree:
        if not any(_same_directory(entry, REPO_ROOT) for entry in sys.path):
            sys.path.insert(0, str(REPO_ROOT))
        return "source tree requested with --source-tree"
    others = [entry for entry in sys.path if not _same_directory(entry, REPO_ROOT)]
    if len(others) == len(sys.path):
        return "installed or on sys.path"
    if importlib.machinery.PathFinder.find_spec("dloader", others) is not None:
        sys.path[:] = others
        return "installed (the checkout was taken off sys.path)"
    return "no installed dloader found: using the source tree of this checkout"


def describe_dloader(choice: str) -> dict[str, Any]:
    info: dict[str, Any] = {"dloader_choice": choice}
    try:
        dloader = importlib.import_module("dloader")
    except Exception as error:
        info["dloader_error"] = f"{type(error).__name__}: {error}"
        return info
    info["dloader_file"] = getattr(dloader, "__file__", None)
    info["dloader_version"] = getattr(dloader, "__version__", None)
    info["dloader_IMPLEMENTATION"] = getattr(dloader, "IMPLEMENTATION", None)
    return info


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop of ``name``: asyncio or uvloop (ImportError without uvloop)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_factories(choice: str, skipped: list[str]) -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    """``choice``: asyncio, uvloop or both; a missing uvloop is reported in ``skipped``."""
    factories: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = []
    for name in LOOP_NAMES if choice == "both" else (choice,):
        if name == "asyncio":
            factories.append((name, asyncio.new_event_loop))
            continue
        try:
            import uvloop
        except ImportError as error:
            skipped.append(f"uvloop skipped: {error}")
            continue
        factories.append((name, uvloop.new_event_loop))
    return factories


# ------------------------------------------------------------------------------ dloader 0.1.1

OLD = "dloader-0.1.1"
OLD_DLOADER_VERSION = "0.1.1"
OLD_DLOADER_MODULE = "dloader_0_1_1"
OLD_DLOADER_WHEEL = "dloader-0.1.1-py3-none-any.whl"
# The wheel PyPI serves; a different file is refused rather than benchmarked.
OLD_DLOADER_SHA256 = "ceecb3cca55765ab4136eecda8c43b52fbaf2af5e01141d9ff754051903adbc2"


def cache_dir() -> Path:
    return Path(os.environ.get("DLOADER_BENCH_CACHE", Path(__file__).parent / ".cache"))


def _fetch_old_dloader(directory: Path) -> Path:
    """Return the path of 0.1.1's ``dloader/__init__.py``, downloading the wheel once."""
    source = directory / f"dloader-{OLD_DLOADER_VERSION}" / "dloader" / "__init__.py"
    if source.is_file():
        return source
    wheel = directory / OLD_DLOADER_WHEEL
    if not wheel.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check"]
        command = [*pip, f"dloader=={OLD_DLOADER_VERSION}", "-d", str(directory)]
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
    spec = importlib.util.spec_from_file_location(OLD_DLOADER_MODULE, _fetch_old_dloader(directory or cache_dir()))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[OLD_DLOADER_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[OLD_DLOADER_MODULE]
        raise
    return module


# ------------------------------------------------------------------------------ the list


class Implementation:
    """One loader under test, resolved lazily (pyperf workers import only theirs).

    ``resolve()`` returns ``(loader_class, make)``, where ``make(load_fn, max_batch_size)`` builds
    a loader inside the running loop, plus ``callers_context`` when the callers of ``load()``
    must run inside a context (the OpenTelemetry variant's parent span).
    """

    def __init__(
        self,
        name: str,
        description: str,
        resolve: Callable[[], tuple[Any, ...]],
        *,
        default: bool = True,
        shares_futures: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.description = description
        self.default = default
        #: Scenarios where it hands one future to several callers (the README table's \*).
        self.shares_futures = shares_futures
        self._resolve = resolve
        self._resolved: tuple[Any, ...] | None = None
        self.skip_reason: str | None = None
        self.origin = ""

    def available(self) -> bool:
        if self._resolved is None and self.skip_reason is None:
            try:
                self._resolved = self._resolve()
            except Exception as error:  # ImportError, pip failure, checksum mismatch, old core
                self.skip_reason = f"{type(error).__name__}: {error}"
            else:
                module = sys.modules.get(getattr(self._resolved[0], "__module__", ""), None)
                self.origin = getattr(module, "__file__", "") or ""
        return self._resolved is not None

    @property
    def loader_class(self) -> Any:
        return self._resolved[0] if self._resolved else None

    def new(self, kind: str, load_fn: Callable[..., Any], max_batch_size: int | None = None) -> Any:
        """A fresh loader, built inside the running loop. ``kind`` picks the floor variant."""
        if self.name == "floor":
            return FLOOR_CLASSES[kind](load_fn, max_batch_size)
        assert self._resolved is not None, f"{self.name} is not available: {self.skip_reason}"
        return self._resolved[1](load_fn, max_batch_size)

    def callers_context(self) -> contextlib.AbstractContextManager[Any]:
        """What the callers of ``load()`` run inside (timed with them); usually nothing."""
        if self._resolved is not None and len(self._resolved) > 2:
            return self._resolved[2]()  # type: ignore[no-any-return]
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"Implementation({self.name!r})"


def _positional(module_name: str, attribute: str = "DataLoader", **options: Any) -> Callable[[], tuple[Any, ...]]:
    def resolve() -> tuple[Any, ...]:
        cls = getattr(importlib.import_module(module_name), attribute)
        return cls, lambda load_fn, max_batch_size: cls(load_fn, max_batch_size=max_batch_size, **options)

    return resolve


def _old_dloader() -> tuple[Any, ...]:
    cls = import_old_dloader().DataLoader
    return cls, lambda load_fn, max_batch_size: cls(load_fn, max_batch_size=max_batch_size)


def _floor() -> tuple[Any, ...]:
    return FloorLoader, None


def _keyword(module_name: str) -> Callable[[], tuple[Any, ...]]:
    def resolve() -> tuple[Any, ...]:
        cls = importlib.import_module(module_name).DataLoader
        return cls, lambda load_fn, max_batch_size: cls(load_fn=load_fn, max_batch_size=max_batch_size)

    return resolve


def _otel(module_name: str, parent_span: bool) -> Callable[[], tuple[Any, ...]]:
    """The OpenTelemetry adapter on the SDK's recording TracerProvider (no exporter)."""

    def resolve() -> tuple[Any, ...]:
        from opentelemetry.sdk.trace import TracerProvider  # the test extra

        from dloader.opentelemetry import OpenTelemetryInstrumentation

        cls = importlib.import_module(module_name).DataLoader
        provider = TracerProvider()
        adapter = OpenTelemetryInstrumentation(tracer_provider=provider)
        tracer = provider.get_tracer("benchmarks")

        def make(load_fn: Callable[..., Any], max_batch_size: int | None) -> Any:
            return cls(load_fn, max_batch_size=max_batch_size, instrumentation=adapter)

        def in_span() -> Any:
            return tracer.start_as_current_span("request")

        return (cls, make, in_span) if parent_span else (cls, make)

    return resolve


def _all() -> list[Implementation]:
    shares = ("duplicates", "cache_hits")
    implementations = [
        Implementation("compiled", "dloader._loader_c.DataLoader (Cython)", _positional("dloader._loader_c")),
        Implementation("python", "dloader._loader_py.DataLoader (pure Python)", _positional("dloader._loader_py")),
        Implementation("floor", "the floor in benchmarks/floor.py", _floor),
        Implementation(OLD, "dloader 0.1.1 from PyPI, as dloader_0_1_1", _old_dloader, shares_futures=shares[:1]),
        Implementation(
            "aiodataloader", "aiodataloader.DataLoader", _positional("aiodataloader"), shares_futures=shares
        ),
        Implementation(
            "strawberry", "strawberry.dataloader.DataLoader", _keyword("strawberry.dataloader"), shares_futures=shares
        ),
    ]
    variants = [
        ("compat-strawberry", "dloader.compat.strawberry.DataLoader (the shim)", _keyword("dloader.compat.strawberry")),
        (
            "compat-aiodataloader",
            "dloader.compat.aiodataloader.DataLoader (the shim)",
            _positional("dloader.compat.aiodataloader"),
        ),
    ]
    for twin, module in (("compiled", "dloader._loader_c"), ("python", "dloader._loader_py")):
        variants += [
            (f"{twin}+stats", f"{twin} with stats=True", _positional(module, stats=True)),
            (f"{twin}+otel", f"{twin}, the OpenTelemetry adapter, callers in a span", _otel(module, parent_span=True)),
            (f"{twin}+otel-nospan", f"{twin}, the OpenTelemetry adapter, no span", _otel(module, parent_span=False)),
        ]
    return implementations + [Implementation(*variant, default=False) for variant in variants]


#: Column order of every table.
IMPLEMENTATION_NAMES = tuple(impl.name for impl in _all())
DEFAULT_NAMES = tuple(impl.name for impl in _all() if impl.default)
FLOOR = "floor"


def make_implementations(names: list[str] | tuple[str, ...] | None = None) -> list[Implementation]:
    """The named implementations in table order (default: floor, twins and peers, not variants)."""
    wanted = set(names or DEFAULT_NAMES)
    return [impl for impl in _all() if impl.name in wanted]
