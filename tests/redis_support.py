"""pytest fixtures for the Redis tests: a session's redis-server, reset for each test; a cache on it.

The server process itself is tests/redis_process.py (shared with benchmarks/redis_cost.py).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis_process import SKIP_REASON, RedisServer, redis_required

__all__ = ["RedisServer", "open_cache", "redis_server", "redis_server_session"]


@asynccontextmanager
async def open_cache(
    server: RedisServer, client_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[Any]:
    """A RedisValueCache (namespace "test", ttl 300 s unless given) on a new client, closed afterwards."""
    import redis.asyncio

    from dloader.redis import RedisValueCache

    options.setdefault("namespace", "test")
    options.setdefault("ttl", 300)
    client = redis.asyncio.Redis.from_url(server.url, **(client_options or {}))
    try:
        yield RedisValueCache(client, **options)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session, killed at the end; skips (fails on CI) without the binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        if redis_required():
            pytest.fail(SKIP_REASON + " (CI is set: the Redis tests must run)", pytrace=False)
        pytest.skip(SKIP_REASON)
    try:
        import redis  # noqa: F401 -- the client the tests drive the server with
    except ImportError:
        if redis_required():
            raise
        pytest.skip("redis-py is not installed; pip install 'dloader[test]' to run the Redis tests")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis-server"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> Iterator[RedisServer]:
    """The session's server, answering, empty, with zeroed statistics; left answering after the test."""
    server = redis_server_session.healthy()
    server.reset()
    try:
        yield server
    finally:
        server.healthy()
