"""Shared fixtures: every behaviour runs against both DataLoader twins and both event loops.

``loader_cls`` is parametrized over the implementations (ids ``compiled`` and
``python``); the compiled parameter imports ``dloader._loader_c`` directly, so a
wheel that lost its extension makes those tests *error*, never pass silently.
``--no-extensions`` (or ``DLOADER_NO_EXTENSIONS=1``) deselects it for pure-only
installs. Async tests run on the default asyncio loop and on uvloop through
pytest-asyncio's ``pytest_asyncio_loop_factories`` hook (ids ``asyncio``/``uvloop``),
and again under task factories: a plain custom one (``asyncio-factory``) and, on
3.12+, ``asyncio.eager_task_factory`` (``asyncio-eager``, ``uvloop-eager``).

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
import re
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


def plain_task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    """A custom task factory that changes nothing but the path tasks are created through."""
    return asyncio.Task(coro, loop=loop, **kwargs)


def _with_task_factory(
    make_loop: Callable[[], asyncio.AbstractEventLoop], task_factory: Any
) -> Callable[[], asyncio.AbstractEventLoop]:
    # Applications set a task factory on their loop (eager tasks are a common speed-up on
    # 3.12+); the loader must dispatch the same under any of them.
    def make() -> asyncio.AbstractEventLoop:
        loop = make_loop()
        loop.set_task_factory(task_factory)
        return loop

    return make


#: Wall-clock seconds after which a test's event loop is stopped, so a hang fails that test
#: (asyncio's "Event loop stopped before Future completed", plus a logged error naming the
#: limit) instead of stalling the whole suite. A timer far in the future adds no loop iterations.
HANG_LIMIT = float(os.environ.get("DLOADER_TEST_HANG_LIMIT", "60"))


#: Seconds a test waits for something that must finish (a shutdown, the last waiter) before
#: it calls it a hang: far longer than any healthy case needs, never a timing assertion.
SETTLE_LIMIT = min(5.0, HANG_LIMIT / 2)


def _stop_when_hung(loop: asyncio.AbstractEventLoop) -> None:
    def stop() -> None:
        logging.getLogger("asyncio").error(
            "the test's event loop ran for %s s (DLOADER_TEST_HANG_LIMIT): stopped as hung", HANG_LIMIT
        )
        # Armed again: a teardown that hangs too (cancelled tasks that never finish) is stopped too.
        loop.call_later(HANG_LIMIT, stop)
        loop.stop()

    loop.call_later(HANG_LIMIT, stop)


def _watched(make_loop: Callable[[], asyncio.AbstractEventLoop]) -> Callable[[], asyncio.AbstractEventLoop]:
    def make() -> asyncio.AbstractEventLoop:
        loop = make_loop()
        _stop_when_hung(loop)
        return loop

    return make


#: Whether asyncio.eager_task_factory exists (CPython 3.12+).
HAS_EAGER_TASKS = hasattr(asyncio, "eager_task_factory")

#: Loop factories by test id, in the order the tests run.
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": _uvloop_factory,
    "asyncio-factory": _with_task_factory(asyncio.new_event_loop, plain_task_factory),
}


def _uvloop_takes_eager_task_factory() -> bool:
    """Whether this uvloop and this CPython agree on the task-factory call.

    uvloop 0.22 calls the factory with ``eager_start=``, which CPython 3.13.0's
    ``asyncio.eager_task_factory`` does not accept (later 3.13 releases do): then
    every task creation fails, the test harness's own included, so no test can run there.
    """
    if uvloop is None:
        return False
    loop = uvloop.new_event_loop()
    try:
        loop.set_task_factory(asyncio.eager_task_factory)

        async def probe() -> None:
            await asyncio.sleep(0)

        coroutine = probe()
        try:
            loop.run_until_complete(loop.create_task(coroutine))
        except TypeError:
            coroutine.close()
            return False
    finally:
        loop.close()
    return True


if HAS_EAGER_TASKS:
    LOOP_FACTORIES["asyncio-eager"] = _with_task_factory(asyncio.new_event_loop, asyncio.eager_task_factory)
    if _uvloop_takes_eager_task_factory():
        LOOP_FACTORIES["uvloop-eager"] = _with_task_factory(_uvloop_factory, asyncio.eager_task_factory)
LOOP_FACTORIES = {name: _watched(make_loop) for name, make_loop in LOOP_FACTORIES.items()}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every async test runs once per loop factory (pytest-asyncio >= 1.4)."""
    return LOOP_FACTORIES


@pytest.fixture(params=list(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """For synchronous tests that create (and close) their own loops."""
    factory = LOOP_FACTORIES[request.param]
    if request.param.startswith("uvloop") and uvloop is None:
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


# ---------------------------------------------------------------- loaders left busy


def loader_classes() -> tuple[type, ...]:
    """Both DataLoader classes (only the pure one when the extension is not built)."""
    classes: list[type] = [_import_python()]
    try:
        classes.append(_import_compiled())
    except ImportError:  # a pure install: the compiled tests are deselected anyway
        pass
    return tuple(classes)


_REPR_COUNTS = re.compile(r"queued=(\d+) in_flight=(\d+)>$")


def debug_state(loader: Any) -> dict[str, Any]:
    """The loader's own bookkeeping, every value 0/False when it is idle.

    The core's private ``_debug_state()`` also counts tracked batches, joined
    waiters and a scheduled dispatch; a core without it is read through the
    queued/in-flight counts of its repr.
    """
    probe = getattr(loader, "_debug_state", None)
    if probe is not None:
        return dict(probe())
    match = _REPR_COUNTS.search(repr(loader))
    assert match is not None, f"cannot read the state of {loader!r}"
    return {"queued": int(match[1]), "in_flight": int(match[2])}


def busy_parts(loader: Any) -> dict[str, Any]:
    """The non-idle parts of ``debug_state(loader)``; empty when the loader is idle."""
    return {part: value for part, value in debug_state(loader).items() if value}


def assert_idle(loader: Any) -> None:
    busy = busy_parts(loader)
    assert not busy, f"{loader!r} still holds work: {busy}"


def loader_tasks() -> list[asyncio.Task[Any]]:
    """The running loop's tasks that belong to a loader (named "dloader:<name>:...")."""
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("dloader:")]


async def settle(loader: Any, iterations: int = 50) -> None:
    """Let a loader finish what it has started: its tasks end, its scheduled dispatch runs.

    Bounded: waits at most SETTLE_LIMIT for the loader's tasks, then at most
    ``iterations`` loop iterations for it to become idle. It never raises for a loader
    that stays busy; the caller's ``assert_idle`` reports that.
    """
    async with asyncio.timeout(SETTLE_LIMIT):
        while pending := loader_tasks():
            await asyncio.wait(pending)
    for _ in range(iterations):
        if not busy_parts(loader) and not loader_tasks():
            return
        await asyncio.sleep(0)


def _freeze_hides_older_objects() -> bool:
    # gc.freeze() parks every tracked object where gc.get_objects() does not look, so a scan
    # at the end of a test sees only what the test created. Probed, not assumed: a build
    # whose collector ignores that (free-threaded ones may) gets the slower fallback.
    older = [object()]
    gc.freeze()
    try:
        return not any(candidate is older for candidate in gc.get_objects())
    finally:
        gc.unfreeze()


_FREEZE_HIDES_OLDER_OBJECTS = _freeze_hides_older_objects()


@pytest.fixture(scope="session")
def _loaders_already_checked() -> Any:
    import weakref

    return weakref.WeakSet()


@pytest.fixture(autouse=True)
def loaders_left_idle(
    request: pytest.FixtureRequest, asyncio_errors: AsyncioErrors, _loaders_already_checked: Any
) -> Iterator[None]:
    """Fail a test after which a loader it created still holds work.

    Runs after the test's event loop was closed (the loop's runner cancels the tasks
    left over, as asyncio.run does), so it also checks that a loader survives
    having its own tasks cancelled from outside. Queued or in-flight keys, tracked
    batches or joined waiters left then would hang the loader's next user. A test
    that deliberately leaves work behind is marked ``allow_busy_loader``.

    The loaders are found by scanning the objects the collector tracks: the
    compiled class cannot be wrapped, and tests create loaders through
    subclasses and examples too. ``gc.freeze()`` at the start keeps the scan to
    the objects this test created (a scan of the whole heap costs ~40 ms).
    """
    if request.node.get_closest_marker("allow_busy_loader") is not None:
        yield
        return
    classes = loader_classes()
    if _FREEZE_HIDES_OLDER_OBJECTS:
        gc.freeze()
    try:
        yield
        candidates = gc.get_objects()
    finally:
        if _FREEZE_HIDES_OLDER_OBJECTS:
            gc.unfreeze()
    created = [
        candidate
        for candidate in candidates
        if isinstance(candidate, classes) and candidate not in _loaders_already_checked
    ]
    del candidates
    busy = []
    for loader in created:
        _loaders_already_checked.add(loader)
        try:
            parts = busy_parts(loader)
        except AttributeError:  # its __init__ raised (a validation test): it never held work
            continue
        if parts:
            busy.append(f"{loader!r}: {parts}")
    if busy:
        pytest.fail(
            "loaders still hold work after the test (mark it allow_busy_loader if that is intended):\n"
            + "\n".join(busy),
            pytrace=False,
        )


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
        self.tasks: list[asyncio.Task[Any] | None] = []
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
        self.tasks.append(task)
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


def task_names_lag_behind_eager_steps() -> bool:
    """Whether a task can run its first step before it gets its name on the running loop.

    With a task factory set, create_task (asyncio up to 3.13.0 at least, and uvloop)
    calls the factory without the name and names the task afterwards, so under an
    eager factory the first step runs as "Task-<n>".
    """
    return asyncio.get_running_loop().get_task_factory() is not None


@pytest.fixture
def loop_type_name() -> Callable[[], str]:
    def name() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    return name
