"""DataLoader(value_cache=RedisValueCache(...)) against a real redis-server, both twins, both loops.

Round trips are counted by the server; outages are real signals; two OS processes share one cache.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis_support import RedisServer, open_cache

pytest.importorskip("redis.asyncio", reason="redis-py is not installed (pip install 'dloader[test]')")

import redis.exceptions

import dloader
from dloader.value_cache import MISS

NAMESPACE = "test"
#: Far above any healthy round trip on a busy machine: only the outage tests use the 50 ms default.
PATIENT = 10.0


def row(key: Any) -> str:
    return f"row-{key}"


def stored_keys(server: RedisServer) -> set[bytes]:
    """The entry keys of the namespace in Redis (the test looks; the cache never scans)."""
    return {key for key in server.admin().keys(f"{NAMESPACE}:*") if key != f"{NAMESPACE}:".encode()}


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Bounded wait for something a background task does (a write, a clear)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen within 10 s")


# ---------------------------------------------------------------- shared across processes


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_second_process_is_served_from_redis(redis_server: RedisServer, loader_cls: type, loop_name: str) -> None:
    if loop_name == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")
    from redis_worker import load_in_this_process

    implementation = "compiled" if loader_cls.__module__ == "dloader._loader_c" else "python"
    keys = list(range(100))
    arguments = (redis_server.url, NAMESPACE, keys, implementation, loop_name)
    spawn = multiprocessing.get_context("spawn")
    reports = []
    for _ in range(2):  # one process after the other, each its own interpreter, loop and loader
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as process:
            reports.append(process.submit(load_in_this_process, *arguments).result(timeout=120))
    first, second = reports
    assert first["values"] == second["values"] == [row(key) for key in keys]
    assert first["batches"] == [keys] and first["writes"] == 100
    assert second["batches"] == [] and second["hits"] == 100
    assert first["failures"] == second["failures"] == 0
    calls = redis_server.command_calls()
    assert (calls["mget"], calls["set"]) == (2, 100)


# ---------------------------------------------------------------- round trips


async def test_concurrent_loads_make_one_mget_and_one_write_pipeline(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache:
        await cache.client.ping()  # open the connection first: connecting reads requests of its own
        reads = redis_server.requests_read()
        loader = loader_cls(recorder, value_cache=cache)
        values = await asyncio.gather(*(loader.load(key) for key in range(100)))
        await loader.shutdown()  # waits for the write
        assert redis_server.round_trips_since(reads) == 2  # the MGET, then the pipeline
        assert values == [row(key) for key in range(100)]
        assert recorder.batches == [list(range(100))]
        calls = redis_server.command_calls()
        assert (calls["mget"], calls["set"]) == (1, 100)
        assert "exec" not in calls and "multi" not in calls

        again = loader_cls(recorder, value_cache=cache)  # the next request
        assert await asyncio.gather(*(again.load(key) for key in range(100))) == values
        await again.shutdown()
    assert recorder.calls == 1
    calls = redis_server.command_calls()
    assert (calls["mget"], calls["set"]) == (2, 100)


async def test_one_mget_per_chunk_with_max_batch_size(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache:
        loader = loader_cls(recorder, max_batch_size=30, value_cache=cache)
        assert await asyncio.gather(*(loader.load(key) for key in range(100))) == [row(key) for key in range(100)]
        await loader.shutdown()
    # The chunks run concurrently: their load_fn calls start in the order their MGETs return.
    assert sorted(map(tuple, recorder.batches)) == [
        tuple(range(start, min(start + 30, 100))) for start in (0, 30, 60, 90)
    ]
    calls = redis_server.command_calls()
    assert (calls["mget"], calls["set"]) == (4, 100)


async def test_hits_skip_load_fn_and_fill_the_local_cache(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache:
        await cache.set_many([(1, "from redis"), (3, "from redis")])
        loader = loader_cls(recorder, value_cache=cache)
        assert await loader.load_many([1, 2, 3, 4, 2]) == ["from redis", row(2), "from redis", row(4), row(2)]
        assert recorder.batches == [[2, 4]]  # only the misses, in request order
        assert await loader.load_many([1, 3]) == ["from redis", "from redis"]  # from cache_map
        await loader.shutdown()
    assert redis_server.command_calls()["mget"] == 1


async def test_cache_false_never_touches_redis(redis_server: RedisServer, loader_cls: type, make_recorder: Any) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache:
        await cache.set_many([(1, "from redis")])
        redis_server.admin().config_resetstat()
        loader = loader_cls(recorder, cache=False, value_cache=cache)
        assert await loader.load_many([1, 2]) == [row(1), row(2)]
        assert await loader.load(1) == row(1)
        await loader.shutdown()
    assert recorder.batches == [[1, 2], [1]]
    assert redis_server.command_calls() == {}
    assert cache.hits == cache.misses == 0


async def test_failures_are_never_written(redis_server: RedisServer, loader_cls: type) -> None:
    async def load_fn(keys: list[int]) -> dict[int, Any]:
        # 0 succeeds, 1 fails with an Exception result, 2 is missing (KeyError).
        return {0: "ok", 1: ValueError("bad row")}

    async def load_fn_raises(keys: list[int]) -> list[Any]:
        raise RuntimeError("database down")

    async with open_cache(redis_server, timeout=PATIENT) as cache:
        loader = loader_cls(load_fn, value_cache=cache)
        results = await loader.load_many([0, 1, 2], return_exceptions=True)
        assert results[0] == "ok" and isinstance(results[1], ValueError) and isinstance(results[2], KeyError)
        failing = loader_cls(load_fn_raises, value_cache=cache)
        with pytest.raises(RuntimeError, match="database down"):
            await failing.load(5)
        await loader.shutdown()
        await failing.shutdown()
        assert await cache.get_many([0, 1, 2, 5]) == ["ok", MISS, MISS, MISS]
    assert stored_keys(redis_server) == {f"{NAMESPACE}:i:0".encode()}


# ---------------------------------------------------------------- invalidation


async def test_invalidate_removes_the_entry_and_the_local_value(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache:
        loader = loader_cls(recorder, value_cache=cache)
        assert await loader.load_many([1, 2]) == [row(1), row(2)]
        await wait_for(lambda: len(stored_keys(redis_server)) == 2, "the write")
        await loader.invalidate([1])
        assert redis_server.admin().exists(f"{NAMESPACE}:i:1") == 0
        assert redis_server.admin().exists(f"{NAMESPACE}:i:2") == 1
        assert await loader.load_many([1, 2]) == [row(1), row(2)]
        assert recorder.batches == [[1, 2], [1]]  # 1 loaded again; 2 still in cache_map
        await loader.shutdown()
    assert redis_server.command_calls()["del"] == 1


async def test_invalidate_reports_that_redis_could_not_delete(redis_server: RedisServer, loader_cls: type) -> None:
    async def load_fn(keys: list[int]) -> list[str]:
        return [row(key) for key in keys]

    async with open_cache(redis_server) as cache:  # the 50 ms default timeout
        loader = loader_cls(load_fn, value_cache=cache)
        redis_server.kill()
        with pytest.raises((redis.exceptions.ConnectionError, TimeoutError)):
            await asyncio.wait_for(loader.invalidate([1]), PATIENT)
        await loader.shutdown()


async def test_clear_all_makes_old_entries_unreachable(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache, open_cache(redis_server, timeout=PATIENT) as other:
        loader = loader_cls(recorder, value_cache=cache)
        assert await loader.load_many([1, 2]) == [row(1), row(2)]
        await loader.shutdown()
        assert await other.get_many([1, 2]) == [row(1), row(2)]  # another process sees them
        loader.clear_all()
        await wait_for(lambda: redis_server.admin().get(f"{NAMESPACE}:") == b"1", "the generation bump")
        assert await other.get_many([1, 2]) == [MISS, MISS]
        assert await loader.load_many([1, 2]) == [row(1), row(2)]
        assert recorder.batches == [[1, 2], [1, 2]]
        await loader.shutdown()
    calls = redis_server.command_calls()
    assert calls["incrby"] == 1
    assert not {"scan", "keys", "del", "unlink"} & set(calls), calls


# ---------------------------------------------------------------- Redis in trouble


async def test_loads_answer_from_load_fn_while_redis_is_paused_then_killed(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, failure_threshold=1000) as cache:  # 50 ms timeout, no skipping
        await cache.client.ping()
        loader = loader_cls(recorder, value_cache=cache)
        redis_server.pause()
        try:
            async with asyncio.timeout(PATIENT):  # a hang guard; each Redis call gives up after 50 ms
                assert await loader.load_many([1, 2]) == [row(1), row(2)]
                await loader.shutdown()  # the write times out too; shutdown waits at most ~50 ms for it
        finally:
            redis_server.resume()
        assert cache.timeouts >= 1 and recorder.batches == [[1, 2]]

        redis_server.kill()
        async with asyncio.timeout(PATIENT):
            assert await loader.load_many([3, 4]) == [row(3), row(4)]
            await loader.shutdown()
        assert recorder.batches == [[1, 2], [3, 4]]
        failures = cache.failures

        redis_server.start()  # empty again: the next request misses, writes, and the one after hits
        cache.timeout = PATIENT  # from here on the server is healthy; a busy machine must not time out
        first = loader_cls(recorder, value_cache=cache)
        assert await first.load_many([5, 6]) == [row(5), row(6)]
        await first.shutdown()
        second = loader_cls(recorder, value_cache=cache)
        assert await second.load_many([5, 6]) == [row(5), row(6)]
        await second.shutdown()
        assert recorder.batches == [[1, 2], [3, 4], [5, 6]]
        assert cache.failures == failures and cache.hits == 2


async def test_redis_is_used_again_after_the_cooldown(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    recorder = make_recorder(row)
    async with open_cache(redis_server, failure_threshold=1, cooldown=0.05) as cache:
        await cache.client.ping()
        redis_server.kill()
        loader = loader_cls(recorder, value_cache=cache)
        assert await asyncio.wait_for(loader.load(1), PATIENT) == row(1)
        await loader.shutdown()
        assert cache.failures >= 1  # then skipped for 50 ms
        redis_server.start()
        await wait_for(lambda: not cache.skipping, "the end of the cooldown")
        cache.timeout = PATIENT  # from here on, the server is healthy
        for _ in range(2):  # the first request writes, the second is served from Redis
            request = loader_cls(recorder, value_cache=cache)
            assert await request.load(2) == row(2)
            await request.shutdown()
        assert recorder.batches == [[1], [2]]


async def test_cancelling_every_waiter_mid_command_leaves_the_pool_usable(
    redis_server: RedisServer, loader_cls: type, make_recorder: Any
) -> None:
    if not redis_server.can_count_unread_requests():
        pytest.skip("needs Linux's /proc/net/tcp to see that the MGET reached the server")
    recorder = make_recorder(row)
    async with open_cache(redis_server, timeout=PATIENT) as cache:
        await cache.set_many([(key, f"cached-{key}") for key in range(10)])
        loader = loader_cls(recorder, value_cache=cache)
        redis_server.pause()
        try:
            waiters = [asyncio.ensure_future(loader.load(key)) for key in range(5)]
            for _ in range(1000):  # until the batch's MGET sits unread in the server's socket
                if redis_server.connections_with_unread_requests() >= 1:
                    break
                await asyncio.sleep(0.01)
            assert redis_server.connections_with_unread_requests() >= 1  # others may hold bytes too
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            assert all(waiter.cancelled() for waiter in waiters)
        finally:
            redis_server.resume()
        # Later loads on the same pool get their own replies, never the cancelled MGET's.
        for key in range(4, 10):
            request = loader_cls(recorder, value_cache=cache)
            assert await request.load_many([key, 100 + key]) == [f"cached-{key}", row(100 + key)]
            await request.shutdown()
        await loader.shutdown()
        assert cache.failures == 0


# ---------------------------------------------------------------- lifecycle


async def test_shutdown_waits_for_pending_writes(redis_server: RedisServer, loader_cls: type) -> None:
    async def load_fn(keys: list[int]) -> list[str]:
        return [row(key) for key in keys]

    async with open_cache(redis_server, timeout=PATIENT) as cache:
        loader = loader_cls(load_fn, value_cache=cache)
        assert await loader.load_many(list(range(20))) == [row(key) for key in range(20)]
        assert loader._debug_state()["pending_writes"] > 0  # waiters never wait for the write
        await loader.shutdown()
        assert loader._debug_state()["pending_writes"] == 0
        assert len(stored_keys(redis_server)) == 20

        async with loader_cls(load_fn, value_cache=cache) as scoped:  # __aexit__ is shutdown()
            assert await scoped.load(20) == row(20)
        assert len(stored_keys(redis_server)) == 21


async def test_shutdown_with_a_paused_server_returns_within_the_timeout(
    redis_server: RedisServer, loader_cls: type
) -> None:
    async def load_fn(keys: list[int]) -> list[str]:
        return [row(key) for key in keys]

    async with open_cache(redis_server, timeout=0.05, failure_threshold=1000) as cache:
        await cache.client.ping()
        loader = loader_cls(load_fn, value_cache=cache)
        await cache.get_many([0])  # the generation is known, so the write is one pipeline
        redis_server.pause()
        try:
            async with asyncio.timeout(PATIENT):
                assert await loader.load(1) == row(1)  # its get_many already timed out
                await loader.shutdown()
            assert loader._debug_state()["pending_writes"] == 0
        finally:
            redis_server.resume()
        assert cache.timeouts >= 1  # the read (the write too, unless shutdown cancelled it first)


def test_shutdown_with_pending_writes_warns_nothing_under_w_error(
    redis_server: RedisServer, loader_cls: type, tmp_path: Path
) -> None:
    """A whole process under -W error, per-request loaders ending with shutdown(): clean exit, writes landed."""
    script = tmp_path / "requests.py"
    script.write_text(
        f"""
import asyncio, gc
import redis.asyncio
from {loader_cls.__module__} import DataLoader
from dloader.redis import RedisValueCache

async def load_fn(keys):
    return [f"row-{{key}}" for key in keys]

async def main():
    client = redis.asyncio.Redis.from_url({redis_server.url!r})
    cache = RedisValueCache(client, namespace={NAMESPACE!r}, ttl=60, timeout=10)
    for request in range(10):
        loader = DataLoader(load_fn, value_cache=cache)
        keys = [request * 10 + i for i in range(10)]
        assert await loader.load_many(keys) == [f"row-{{key}}" for key in keys]
        await loader.shutdown()  # the end of the request, its write still pending
        del loader
        gc.collect()
    await client.aclose()

asyncio.run(main())
gc.collect()
print("done")
""",
        encoding="utf-8",
    )
    # The child imports the very dloader under test (the installed one in CI).
    env = {**os.environ, "PYTHONPATH": str(Path(dloader.__file__).resolve().parent.parent)}
    completed = subprocess.run(
        [sys.executable, "-P", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert (completed.stdout, completed.stderr) == ("done\n", "")
    assert len(stored_keys(redis_server)) == 100


# ---------------------------------------------------------------- the README's example


def test_the_readme_example_runs_and_prints_what_the_readme_shows(redis_server: RedisServer, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Sharing a cache across processes", 1)[1].split("\n## ", 1)[0]
    code, expected = re.findall(r"```(?:python)?\n(.*?)```", section, flags=re.DOTALL)[:2]
    script = tmp_path / "shared_cache.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(dloader.__file__).resolve().parent.parent),
        "REDIS_URL": redis_server.url,
    }
    completed = subprocess.run(
        [sys.executable, "-P", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == expected
