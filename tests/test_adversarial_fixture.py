"""What the idle check that conftest runs after every test reads: queued and in-flight work counts as
busy, and a loader that finished everything reads as idle."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import busy_parts


async def fetch(keys: list[Any]) -> list[Any]:
    return keys


def test_queued_work_counts_as_busy(loader_cls: type, loop_factory: Any) -> None:
    loop = loop_factory()
    try:
        loader = loader_cls(fetch, loop=loop)
        assert busy_parts(loader) == {}
        loader.load(1)
        loader.load_many([2, 3])
        assert busy_parts(loader).get("queued") == 3
        assert loop.run_until_complete(loader.shutdown()) is None
        assert busy_parts(loader) == {}
    finally:
        loop.close()


async def test_in_flight_work_counts_as_busy(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder)
    future = loader.load(1)
    await spin(lambda: recorder.calls == 1)
    assert busy_parts(loader).get("in_flight") == 1
    recorder.release()
    assert await future == "value-of-1"
    for _ in range(5):
        await asyncio.sleep(0)
    assert busy_parts(loader) == {}
