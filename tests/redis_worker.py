"""Runs in a spawned process: its own event loop, its own loader, the shared Redis cache.

Kept free of pytest and test modules so that a spawned child imports little; see test_redis_loader.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def load_in_this_process(
    url: str, namespace: str, keys: list[Any], implementation: str, loop_name: str
) -> dict[str, Any]:
    """Load ``keys`` through a per-request loader backed by Redis; report what load_fn saw.

    Returns the values, the batches ``load_fn`` received and the cache's counters.
    """
    if implementation == "compiled":
        from dloader._loader_c import DataLoader
    else:
        from dloader._loader_py import DataLoader  # type: ignore[assignment]
    import redis.asyncio

    from dloader.redis import RedisValueCache

    batches: list[list[Any]] = []

    async def load_rows(batch: list[Any]) -> list[str]:
        batches.append(list(batch))
        return [f"row-{key}" for key in batch]

    async def request() -> dict[str, Any]:
        client = redis.asyncio.Redis.from_url(url)
        try:
            # A generous timeout: a fresh process on a busy machine must not fall back by accident.
            cache = RedisValueCache(client, namespace=namespace, ttl=60, timeout=10)
            loader = DataLoader(load_rows, value_cache=cache)
            try:
                values = await loader.load_many(keys)
            finally:
                await loader.shutdown()  # the end of the request: the pending write lands first
            return {
                "values": values,
                "batches": batches,
                "hits": cache.hits,
                "misses": cache.misses,
                "writes": cache.writes,
                "failures": cache.failures,
            }
        finally:
            await client.aclose()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop_name == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(request())
