"""Threads: the compiled module keeps a free-threaded interpreter free of the GIL, and a loader
belongs to the thread of its event loop.

The GIL check runs in a fresh interpreter that imports only dloader: in this process pytest,
its plugins or uvloop may already have imported dloader or switched the GIL on, which would
hide or fake the result.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

needs_free_threading = pytest.mark.skipif(
    not FREE_THREADED, reason="needs a free-threaded CPython build (Py_GIL_DISABLED); this one has a GIL"
)

# Runs in a fresh interpreter; prints whether the GIL is on after importing dloader.
_GIL_PROBE = """
import importlib, sys, warnings
warnings.simplefilter("error")  # the GIL being re-enabled is reported as a RuntimeWarning
assert not sys._is_gil_enabled(), "the GIL was on before dloader was imported"
module = importlib.import_module(sys.argv[1])
import dloader
print(module.__file__)
print(dloader.IMPLEMENTATION)
print(sys._is_gil_enabled())
"""


def _probe_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # PYTHON_GIL=1 would force the GIL on (and =0 force it off): the module must decide.
    environment.pop("PYTHON_GIL", None)
    return environment


@needs_free_threading
def test_importing_dloader_keeps_the_gil_disabled(loader_cls: type, tmp_path: Path) -> None:
    module = loader_cls.__module__  # dloader._loader_c or dloader._loader_py
    completed = subprocess.run(
        [sys.executable, "-c", _GIL_PROBE, module],
        cwd=tmp_path,  # not the checkout: the installed package is imported
        env=_probe_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    module_file, implementation, gil_enabled = completed.stdout.split()
    if module == "dloader._loader_c":
        assert module_file.endswith((".so", ".pyd")), module_file
    assert implementation in {"cython", "python"}
    assert gil_enabled == "False", f"importing {module} re-enabled the GIL:\n{completed.stderr}"


# ---------------------------------------------------------------- one loader, one loop, one thread


class _LoopThread:
    """An event loop running forever in a thread of its own."""

    def __init__(self, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.loop = loop_factory()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dloader-test-loop", daemon=True)

    def __enter__(self) -> _LoopThread:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the loop thread did not stop"
        self.loop.close()

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


def test_load_from_another_thread_while_busy_raises(
    loader_cls: type, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    batch_started = threading.Event()
    gates: list[asyncio.Future[None]] = []

    async def load_fn(keys: list[int]) -> list[int]:
        if not gates:  # the first batch waits for the test to release it
            gate = asyncio.get_running_loop().create_future()
            gates.append(gate)
            batch_started.set()
            await gate
        return [key * 10 for key in keys]

    loader = loader_cls(load_fn, name="owned")
    with _LoopThread(loop_factory) as owner:

        async def load_on_owner() -> int:
            result: int = await loader.load(1)
            return result

        in_flight = asyncio.run_coroutine_threadsafe(load_on_owner(), owner.loop)
        assert batch_started.wait(30), "the batch never started on the owner's loop"

        async def load_here() -> None:
            loader.load(2)

        # The main thread, on a loop of its own, while key 1 is in flight on the owner's loop.
        with asyncio.Runner(loop_factory=loop_factory) as runner, pytest.raises(RuntimeError) as raised:
            runner.run(load_here())
        assert "owned" in str(raised.value)

        # The refusal left the owner's work intact.
        owner.loop.call_soon_threadsafe(gates[0].set_result, None)
        assert in_flight.result(30) == 10
        assert owner.run(_load_one(loader, 3)) == 30
        assert owner.run(loader.shutdown()) is None


def test_load_from_a_thread_without_a_loop_is_refused(
    loader_cls: type, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """A loader bound with loop= is usable before that loop runs, but never from another thread."""
    with _LoopThread(loop_factory) as owner:
        loader = loader_cls(_double, loop=owner.loop, name="owned")
        with pytest.raises(RuntimeError, match=r"'owned'.*thread other than its event loop's"):
            loader.load(1)
        assert repr(loader).endswith("queued=0 in_flight=0>"), "the refused call queued nothing"
        assert owner.run(_load_one(loader, 2)) == 4


async def _double(keys: list[int]) -> list[int]:
    return [key * 2 for key in keys]


async def _load_one(loader: Any, key: int) -> Any:
    return await loader.load(key)


def test_loaders_on_many_threads_at_once(
    loader_cls: type, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """One loader per thread and loop, all running together (in parallel without a GIL)."""
    threads = 8
    keys_per_thread = 500
    barrier = threading.Barrier(threads)
    results: dict[int, list[int]] = {}
    calls: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        async def load_fn(keys: list[int]) -> list[int]:
            calls[index] = calls.get(index, 0) + 1
            await asyncio.sleep(0)
            return [key + index for key in keys]

        async def main() -> list[int]:
            loader = loader_cls(load_fn, max_batch_size=100)
            values: list[int] = await asyncio.gather(*(loader.load(key) for key in range(keys_per_thread)))
            again: list[int] = await loader.load_many(range(keys_per_thread))  # all cached
            assert again == values
            assert await loader.shutdown() is None
            return values

        try:
            barrier.wait(timeout=30)
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                results[index] = runner.run(main())
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(index,), name=f"loader-{index}") for index in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in workers), "a loader thread hung"
    assert errors == []
    for index in range(threads):
        assert results[index] == [key + index for key in range(keys_per_thread)]
        assert calls[index] == keys_per_thread // 100  # batches of max_batch_size, cache hits after
