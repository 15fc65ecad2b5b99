"""Shared fixtures: every behaviour runs against both DataLoader twins and both event loops.

``loader_cls`` is parametrized over the implementations (ids ``compiled`` and
``python``); the compiled parameter imports ``dloader._loader_c`` directly, so a
wheel that lost its extension makes those tests *error*, never pass silently.
``--no-extensions`` (or ``DLOADER_NO_EXTENSIONS=1``) deselects it for pure-only
installs. Async tests run on the default asyncio loop and on uvloop through
pytest-asyncio's ``pytest_asyncio_loop_factories`` hook (ids ``asyncio``/``uvloop``).

The suite tests the *installed* package: ``pytest`` (or ``python -P -m pytest``)
from the checkout keeps the source tree off ``sys.path``. ``python -m pytest``
puts it first; when that source tree has no compiled module while the installed
dloader has one, the run stops at once with one line saying what to run instead.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_support import redis_server, redis_server_session  # noqa: F401 -- fixtures for the Redis tests

try:
    import uvloop
except ImportError:  # Windows, PyPy: the uvloop parameter is skipped
    uvloop = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-extensions",
        action="store_true",
        default=False,
        help="deselect the tests of the compiled DataLoader (for pure-Python installs); "
        "also set by DLOADER_NO_EXTENSIONS=1",
    )


#: The selector's ShadowedExtensionWarning, when this run deliberately tests a shadowing source tree.
SHADOWED_NOTE: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    _import_dloader_or_stop(config)
    # Shadowing was decided on above, once. Tests that re-import dloader (test_selection) run
    # the selector again; its warning must not turn into an error there (filterwarnings = error).
    config.addinivalue_line("filterwarnings", "ignore:dloader was imported from:RuntimeWarning")


def _import_dloader_or_stop(config: pytest.Config) -> None:
    """Import dloader before any test does; stop the run with one line when that cannot go well.

    An invalid switch (``DLOADER_NO_EXTENSIONS=2``) or a source tree without the
    compiled module shadowing an installed compiled dloader (``python -m pytest``
    from the checkout) would otherwise surface as hundreds of errors. With
    ``--no-extensions`` a shadowing source tree is what the run asked to test: it
    goes on, and the header says so.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import dloader._switches
        except ValueError as error:
            if str(error).startswith("environment variable DLOADER_"):
                raise pytest.UsageError(str(error)) from None
            raise
    for warning in caught:
        if warning.category.__name__ == "ShadowedExtensionWarning":
            if config.getoption("--no-extensions"):
                SHADOWED_NOTE.append(str(warning.message))
                continue
            raise pytest.UsageError(
                f"{os.path.dirname(dloader.__file__)} (a source tree without the compiled module) shadows the "
                "installed dloader: run `pytest` or `python -P -m pytest`, not `python -m pytest`"
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    for name in dloader._switches.SWITCHES:  # the build switches too: a typo is an error everywhere
        try:
            dloader._switches.env_flag(name)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None


def no_extensions_switch() -> bool:
    """DLOADER_NO_EXTENSIONS, read by the package's own parser."""
    from dloader._switches import env_flag

    return env_flag("DLOADER_NO_EXTENSIONS")


def extensions_disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--no-extensions")) or no_extensions_switch()


def pytest_report_header(config: pytest.Config) -> list[str]:
    # Tests must exercise the installed package; say which one was imported.
    import dloader
    import dloader._loader

    lines = [
        f"dloader {dloader.__version__} from {os.path.dirname(dloader.__file__)}",
        f"dloader.IMPLEMENTATION={dloader.IMPLEMENTATION!r}, "
        f"EXTENSION_IMPORT_ERROR={dloader._loader.EXTENSION_IMPORT_ERROR!r}",
        f"compiled tests: {'deselected (--no-extensions)' if extensions_disabled(config) else 'enabled'}; "
        f"uvloop: {'available' if uvloop is not None else 'not installed'}",
        *(f"note: {note}" for note in SHADOWED_NOTE),
    ]
    return lines


def _uses_compiled(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("loader_cls") == "compiled":
        return True
    return "compiled_cls" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not extensions_disabled(config):
        return
    selected, deselected = [], []
    for item in items:
        (deselected if _uses_compiled(item) else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


# ---------------------------------------------------------------- implementations


def _import_compiled() -> type:
    # Imported directly, not through dloader._loader: a missing extension must error.
    from dloader._loader_c import DataLoader

    return DataLoader


def _import_python() -> type:
    from dloader._loader_py import DataLoader

    return DataLoader


@pytest.fixture(params=["compiled", "python"])
def loader_cls(request: pytest.FixtureRequest) -> type:
    """The DataLoader class under test: the compiled twin or the pure-Python one."""
    if request.param == "compiled":
        if extensions_disabled(request.config):
            pytest.skip("compiled extension disabled by --no-extensions / DLOADER_NO_EXTENSIONS")
        return _import_compiled()
    return _import_python()


@pytest.fixture
def compiled_cls(request: pytest.FixtureRequest) -> type:
    if extensions_disabled(request.config):
        pytest.skip("compiled extension disabled by --no-extensions / DLOADER_NO_EXTENSIONS")
    return _import_compiled()


@pytest.fixture
def python_cls() -> type:
    return _import_python()


def copy_source_tree_without_extension(root: Path) -> Path:
    """Copy the dloader under test into ``root/dloader`` without its compiled module, as a fresh clone has it."""
    import dloader

    package = root / "dloader"
    package.mkdir(parents=True)
    for source in Path(dloader.__file__).parent.iterdir():
        if source.suffix in {".py", ".pyx", ".pxd", ".typed"}:
            shutil.copy2(source, package / source.name)
    return root


@pytest.fixture
def source_tree_without_extension(tmp_path: Path) -> Path:
    """A checkout-like directory whose ``dloader/`` has no compiled module."""
    return copy_source_tree_without_extension(tmp_path / "checkout")


# ---------------------------------------------------------------- event loops


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    if uvloop is None:
        pytest.skip("uvloop is not installed on this platform")
    return uvloop.new_event_loop()


#: Loop factories by test id, in the order the tests run.
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": _uvloop_factory,
}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every async test runs once per loop factory (pytest-asyncio >= 1.4)."""
    return LOOP_FACTORIES


@pytest.fixture(params=list(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """For synchronous tests that create (and close) their own loops."""
    factory = LOOP_FACTORIES[request.param]
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed on this platform")
    return factory


# ---------------------------------------------------------------- asyncio's own error reports


class AsyncioErrors(logging.Handler):
    """Collects what asyncio logs at ERROR level; ``allow(text)`` excuses matching records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.allowed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def unexpected(self) -> list[str]:
        messages = [record.getMessage() for record in self.records]
        return [message for message in messages if not any(text in message for text in self.allowed)]


@pytest.fixture(scope="session", autouse=True)
def _asyncio_errors_session(request: pytest.FixtureRequest) -> Iterator[AsyncioErrors]:
    """Catches reports from objects that outlived their test (collected later)."""
    handler = AsyncioErrors()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
        gc.collect()
    finally:
        logger.removeHandler(handler)
    unexpected = handler.unexpected()
    if unexpected and not (request.session.shouldstop or request.session.shouldfail):
        pytest.fail("asyncio reported errors during the session:\n" + "\n".join(unexpected), pytrace=False)


@pytest.fixture(autouse=True)
def asyncio_errors(_asyncio_errors_session: AsyncioErrors) -> Iterator[AsyncioErrors]:
    """Fail a test that makes asyncio report an error.

    "Future exception was never retrieved", "Task was destroyed but it is
    pending" and "Exception in callback" are logged by the loop's exception
    handler, not raised as warnings, so ``filterwarnings = error`` alone does
    not catch them. A test that expects such a report calls ``allow(text)``.
    """
    handler = AsyncioErrors()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
        # Futures and tasks report from __del__: collect the young generations
        # (cheap, unlike a full collection) so most reports land in their test.
        gc.collect(1)
    finally:
        logger.removeHandler(handler)
    # What this test allowed is allowed if it is only collected later.
    _asyncio_errors_session.allowed.extend(handler.allowed)
    unexpected = handler.unexpected()
    if unexpected:
        pytest.fail("asyncio reported errors:\n" + "\n".join(unexpected), pytrace=False)


# ---------------------------------------------------------------- load_fn helpers


def default_value(key: Any) -> str:
    return f"value-of-{key!r}"


class Recorder:
    """An async load_fn that logs every batch it receives.

    ``value(key)`` computes each key's result (an Exception instance fails that
    key). With ``gated=True`` every call waits until the test calls
    ``release(index, ...)``; ``release`` may replace the results or make the
    call raise.
    """

    def __init__(
        self,
        value: Callable[[Any], Any] = default_value,
        *,
        gated: bool = False,
        raises: BaseException | None = None,
    ) -> None:
        self.value = value
        self.gated = gated
        self.raises = raises
        self.batches: list[list[Any]] = []
        self.arguments: list[list[Any]] = []
        self.task_names: list[str | None] = []
        self.gates: list[asyncio.Future[Any]] = []
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    def __repr__(self) -> str:
        return "Recorder"

    @property
    def calls(self) -> int:
        return len(self.batches)

    @property
    def keys(self) -> list[Any]:
        return [key for batch in self.batches for key in batch]

    async def __call__(self, keys: list[Any]) -> Any:
        index = len(self.batches)
        value = self.value  # as it was when this call started
        self.arguments.append(keys)
        self.batches.append(list(keys))
        task = asyncio.current_task()
        self.task_names.append(task.get_name() if task is not None else None)
        if self.gated:
            gate = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            try:
                outcome = await gate
            except asyncio.CancelledError:
                self.cancelled.append(index)
                raise
            if outcome is not None:
                kind, payload = outcome
                if kind == "raise":
                    raise payload
                self.finished.append(index)
                return payload
        if self.raises is not None:
            raise self.raises
        self.finished.append(index)
        return [value(key) for key in keys]

    def release(self, index: int = -1, *, results: Any = None, raises: BaseException | None = None) -> None:
        gate = self.gates[index]
        if raises is not None:
            gate.set_result(("raise", raises))
        elif results is not None:
            gate.set_result(("return", results))
        else:
            gate.set_result(None)

    def release_all(self) -> None:
        for gate in self.gates:
            if not gate.done():
                gate.set_result(None)


@pytest.fixture
def make_recorder() -> type[Recorder]:
    return Recorder


async def spin_until(predicate: Callable[[], bool], limit: int = 200) -> int:
    """Yield to the loop until ``predicate()`` holds; return how many iterations it took."""
    for iteration in range(limit):
        if predicate():
            return iteration
        await asyncio.sleep(0)
    raise AssertionError(f"condition not reached within {limit} loop iterations")


@pytest.fixture
def spin() -> Callable[..., Awaitable[int]]:
    return spin_until


class IterationCounter:
    """Counts event-loop iterations with a self-rescheduling ``call_soon`` chain.

    A callback scheduled with ``call_soon`` from a callback runs in the next
    iteration, so ``count`` is the number of iterations that started since
    ``start()``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self.count = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> IterationCounter:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        self._handle = self.loop.call_soon(self._tick)
        return self

    def _tick(self) -> None:
        self.count += 1
        self._handle = self.loop.call_soon(self._tick)  # type: ignore[union-attr]

    def stop(self) -> int:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        return self.count


@pytest.fixture
def iteration_counter() -> Iterator[type[IterationCounter]]:
    yield IterationCounter


@pytest.fixture
def loop_type_name() -> Callable[[], str]:
    def name() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    return name
