"""What a Redis-backed ValueCache costs: ``RedisValueCache.get_many`` against a bare and a hand-written MGET.

``python -m benchmarks.redis_cost [--url redis://HOST:PORT/DB] [--quick]``; without --url it starts a redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.implementations import REPO_ROOT, describe_dloader, loop_factories, select_dloader
from benchmarks.paired import summarize

NAMESPACE = "bench:redis_cost"
SIZES = (10, 100, 1000)
VARIANTS = ("MGET", "MGET+json", "get_many")


def typical_row(key: int) -> dict[str, Any]:
    """A user row as an API would cache it: about 100 bytes of JSON."""
    return {"id": key, "name": f"user-{key}", "email": f"user-{key}@example.org", "score": key * 1.5, "active": True}


def median(values: list[float]) -> float:
    summary = summarize(values)
    assert summary is not None, "no samples"
    return summary["median"]


async def measure(url: str, size: int, rounds: int, inner: int) -> dict[str, dict[str, float]]:
    """Per variant: wall µs per call, client CPU µs per key, and both as medians of per-round ratios to MGET."""
    import redis.asyncio

    from dloader.redis import RedisValueCache

    client = redis.asyncio.Redis.from_url(url)
    try:
        cache = RedisValueCache(client, namespace=NAMESPACE, ttl=600, timeout=None)
        keys = list(range(size))
        await cache.get_many(keys)  # reads the generation, so that the write is one pipeline
        await cache.set_many([(key, typical_row(key)) for key in keys])
        redis_keys = [cache.redis_key(key) for key in keys]
        plain_keys = [f"{NAMESPACE}:plain:{key}" for key in keys]  # what a hand-written cache stores
        await client.mset({plain: json.dumps(typical_row(key)) for plain, key in zip(plain_keys, keys)})

        async def by_hand() -> Any:
            return [json.loads(value) for value in await client.mget(plain_keys)]

        variants: dict[str, Callable[[], Awaitable[Any]]] = {
            "MGET": lambda: client.mget(redis_keys),  # the floor: no decoding
            "MGET+json": by_hand,
            "get_many": lambda: cache.get_many(keys),
        }
        expected = [typical_row(key) for key in keys]
        if await variants["get_many"]() != expected or await by_hand() != expected:
            raise AssertionError("wrong values read back from Redis")
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        for round_index in range(rounds + 1):  # round 0 only warms up
            for name in VARIANTS if round_index % 2 else VARIANTS[::-1]:
                wall, cpu = time.perf_counter(), time.thread_time()
                for _ in range(inner):
                    await variants[name]()
                if round_index:
                    samples[name].append(((time.perf_counter() - wall) / inner, (time.thread_time() - cpu) / inner))
        await cache.clear()
        await client.delete(*plain_keys)
    finally:
        await client.aclose()
    floor = samples["MGET"]
    row = {}
    for name in VARIANTS:
        mine = samples[name]
        row[name] = {
            "wall_us": median([wall for wall, _ in mine]) * 1e6,
            "cpu_us_per_key": median([cpu for _, cpu in mine]) * 1e6 / size,
            "wall_ratio": median([s[0] / f[0] for s, f in zip(mine, floor)]),
            "cpu_ratio": median([s[1] / f[1] for s, f in zip(mine, floor)]),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Redis to use (its namespace bench:redis_cost); default: start one")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 10 s)")
    parser.add_argument("--smoke", action="store_true", help="CI: 2 rounds of 10 and 100 keys, checks the values")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    args = parser.parse_args(argv)
    info = describe_dloader(select_dloader(source_tree=False))
    print(f"python {sys.version.split()[0]}; dloader from {info.get('dloader_file')} ({info.get('dloader_choice')})")
    try:
        import redis
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:
        print("redis-py is not installed: pip install 'dloader[bench]'")
        return 2
    print(f"redis-py {redis.__version__}, reply parser: {'hiredis' if HIREDIS_AVAILABLE else 'pure Python'}")
    with tempfile.TemporaryDirectory() as workdir:
        server = None
        if args.url is None:
            if shutil.which("redis-server") is None:
                print("redis-server not found: install it (apt-get install redis-server) or pass --url")
                return 2
            sys.path.insert(0, str(REPO_ROOT / "tests"))
            from redis_process import start_server

            server = start_server(Path(workdir))
        url = args.url or server.url
        try:
            print(f"redis-server {redis.Redis.from_url(url).info('server')['redis_version']} at {url}")
            rounds, inner = (2, 2) if args.smoke else (15, 20) if args.quick else (60, 50)
            for loop_name, factory in loop_factories(args.loop, []):
                print(f"\n{loop_name}: per call, medians of per-round ratios to a bare MGET (no decoding)")
                print(
                    f"{'N':>5} | {'variant':<10} | {'wall/call':>10} | {'× MGET':>7} | {'CPU/key':>9} | {'× MGET':>7}"
                )
                for size in SIZES[:2] if args.smoke else SIZES:
                    with asyncio.Runner(loop_factory=factory) as runner:
                        row = runner.run(measure(url, size, rounds, inner))
                    for name, cell in row.items():
                        print(
                            f"{size:>5} | {name:<10} | {cell['wall_us']:>8.1f}µs | {cell['wall_ratio']:>7.2f} |"
                            f" {cell['cpu_us_per_key']:>7.2f}µs | {cell['cpu_ratio']:>7.2f}"
                        )
        finally:
            if server is not None:
                server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
