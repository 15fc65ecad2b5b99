"""What a Redis-backed ValueCache costs: RedisValueCache.get_many per key against a hand-written MGET.

``python -m benchmarks.redis_cost [--url redis://HOST:PORT/DB] [--quick]`` from the repository root.

Part 1 (any dloader with ``dloader.redis``): for N = 10, 100, 1000 keys, interleaved round
by round on one connection, the time of

- ``MGET``: ``await client.mget(keys)`` of precomputed key strings, no decoding (the floor);
- ``MGET+json``: what a user writes by hand: format the keys, ``MGET``, ``json.loads`` each value;
- ``get_many``: ``await RedisValueCache.get_many(keys)`` (key encoding, the generation in
  the same MGET, the generation check, JSON decoding, counters).

It prints per-call wall time (the round trip included) and the client's CPU time per key,
as medians of per-round ratios against the floor, and the extra microseconds per key.

Part 2 (once the core accepts ``value_cache=``): two OS processes run per-request loaders
over the same keys against a SQLite file (with a simulated per-query latency, as in the
demo), once with SQLite alone and once sharing a RedisValueCache; it prints loads per second
and how many queries reached SQLite. Without ``--url`` a private redis-server is started on
a free loopback port (tests/redis_process.py) and killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._cli import REPO_ROOT, describe_dloader, select_dloader

NAMESPACE = "bench:redis_cost"
SIZES = (10, 100, 1000)


def typical_row(key: int) -> dict[str, Any]:
    """A user row as an API would cache it: about 100 bytes of JSON."""
    return {"id": key, "name": f"user-{key}", "email": f"user-{key}@example.org", "score": key * 1.5, "active": True}


def loop_factories(choice: str) -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    factories: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [("asyncio", asyncio.new_event_loop)]
    if choice in ("both", "uvloop"):
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed: asyncio only")
        else:
            factories.append(("uvloop", uvloop.new_event_loop))
    if choice == "uvloop":
        factories = factories[1:]
    return factories


# ------------------------------------------------------------------------------ part 1


async def measure_get_many(url: str, sizes: tuple[int, ...], rounds: int, inner: int) -> list[dict[str, Any]]:
    import redis.asyncio

    from dloader.redis import RedisValueCache

    client = redis.asyncio.Redis.from_url(url)
    results = []
    try:
        cache = RedisValueCache(client, namespace=NAMESPACE, ttl=600, timeout=None)
        for size in sizes:
            keys = list(range(size))
            await cache.get_many(keys)  # reads the generation, so that the write is one pipeline
            await cache.set_many([(key, typical_row(key)) for key in keys])
            redis_keys = [cache.redis_key(key) for key in keys]
            # The hand-written cache stores plain JSON under its own keys.
            writing = client.pipeline(transaction=False)
            for key in keys:
                writing.set(f"{NAMESPACE}:plain:{key}", json.dumps(typical_row(key)), ex=600)
            await writing.execute()

            async def floor() -> Any:
                return await client.mget(redis_keys)

            async def by_hand() -> Any:
                raw = await client.mget([f"{NAMESPACE}:plain:{key}" for key in keys])
                return [json.loads(value) if value is not None else None for value in raw]

            async def get_many() -> Any:
                return await cache.get_many(keys)

            expected = [typical_row(key) for key in keys]
            assert await get_many() == expected and await by_hand() == expected, "wrong values"
            variants = {"MGET": floor, "MGET+json": by_hand, "get_many": get_many}
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for round_index in range(rounds + 1):
                order = list(variants.items())
                if round_index % 2:
                    order.reverse()  # alternate the order: A B C, C B A, ...
                for name, variant in order:
                    wall, cpu = time.perf_counter(), time.thread_time()
                    for _ in range(inner):
                        await variant()
                    if round_index:  # the first round only warms up
                        samples[name].append(((time.perf_counter() - wall) / inner, (time.thread_time() - cpu) / inner))
            floor_samples = samples["MGET"]
            row: dict[str, Any] = {"keys": size}
            for name in variants:
                wall_ratio = statistics.median(s[0] / f[0] for s, f in zip(samples[name], floor_samples))
                cpu_ratio = statistics.median(s[1] / f[1] for s, f in zip(samples[name], floor_samples))
                wall = statistics.median(s[0] for s in samples[name])
                cpu = statistics.median(s[1] for s in samples[name])
                row[name] = {"wall_us": wall * 1e6, "cpu_us_per_key": cpu * 1e6 / size, "wall_ratio": wall_ratio}
                row[name]["cpu_ratio"] = cpu_ratio
            floor_cpu = row["MGET"]["cpu_us_per_key"]
            for name in variants:
                row[name]["extra_cpu_us_per_key"] = row[name]["cpu_us_per_key"] - floor_cpu
            results.append(row)
        await cache.clear()
    finally:
        await client.aclose()
    return results


def print_part_1(loop_name: str, results: list[dict[str, Any]]) -> None:
    print(f"\n{loop_name}: per call, median of per-round ratios to the floor (plain MGET, no decoding)")
    print(
        f"{'N':>5} | {'variant':<10} | {'wall/call':>10} | {'× MGET':>7} | {'CPU/key':>9} | {'× MGET':>7} |"
        f" {'extra CPU/key':>13}"
    )
    print("-" * 80)
    for row in results:
        for name in ("MGET", "MGET+json", "get_many"):
            cell = row[name]
            print(
                f"{row['keys']:>5} | {name:<10} | {cell['wall_us']:>8.1f}µs | {cell['wall_ratio']:>7.2f} |"
                f" {cell['cpu_us_per_key']:>7.2f}µs | {cell['cpu_ratio']:>7.2f} | {cell['extra_cpu_us_per_key']:>11.2f}µs"
            )


# ------------------------------------------------------------------------------ part 2


def core_has_value_cache() -> bool:
    from dloader import DataLoader

    async def load_fn(keys: list[Any]) -> list[Any]:
        return keys

    try:
        DataLoader(load_fn, value_cache=None)
    except TypeError:
        return False
    return True


def build_database(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, score REAL, active INTEGER)")
        db.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
            [(key, f"user-{key}", f"user-{key}@example.org", key * 1.5, 1) for key in range(rows)],
        )


def serve_requests(
    mode: str,
    url: str,
    database: str,
    requests: int,
    keys_per_request: int,
    hot_keys: int,
    latency_ms: float,
    seed: int,
) -> dict[str, Any]:
    """One process: ``requests`` sequential requests, each a new loader loading random hot keys."""
    import redis.asyncio

    from dloader import DataLoader
    from dloader.redis import RedisValueCache

    db = sqlite3.connect(database)
    queries = 0

    async def load_users(ids: list[int]) -> dict[int, dict[str, Any]]:
        nonlocal queries
        queries += 1
        await asyncio.sleep(latency_ms / 1000)  # the database's round trip
        sql = f"SELECT id, name, email, score, active FROM users WHERE id IN ({', '.join('?' * len(ids))})"
        return {
            row[0]: {"id": row[0], "name": row[1], "email": row[2], "score": row[3], "active": bool(row[4])}
            for row in db.execute(sql, ids)
        }

    async def run() -> dict[str, Any]:
        generator = random.Random(seed)
        client = redis.asyncio.Redis.from_url(url)
        cache = RedisValueCache(client, namespace=NAMESPACE, ttl=600) if mode == "redis" else None
        loads = 0
        started = time.perf_counter()
        try:
            for _ in range(requests):
                keys = generator.sample(range(hot_keys), keys_per_request)
                options = {"value_cache": cache} if cache is not None else {}
                loader = DataLoader(load_users, **options)
                values = await loader.load_many(keys)
                loads += len(values)
                await loader.shutdown()
        finally:
            await client.aclose()
        return {
            "loads": loads,
            "seconds": time.perf_counter() - started,
            "queries": queries,
            "hits": cache.hits if cache is not None else 0,
            "failures": cache.failures if cache is not None else 0,
        }

    return asyncio.run(run())


def measure_two_processes(url: str, quick: bool, latency_ms: float) -> None:
    import redis

    requests = 200 if quick else 1000
    hot_keys = 1000
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "users.sqlite"
        build_database(database, 10_000)
        print(
            f"\ntwo processes at once, {requests} requests each (a new loader per request), 20 random keys "
            f"per request from {hot_keys} hot users of 10000, {latency_ms:g} ms per SQLite query; the Redis "
            "namespace starts empty"
        )
        print(f"{'backend':<16} | {'loads/s':>9} | {'SQLite queries':>14} | {'Redis hits':>10}")
        print("-" * 60)
        for mode in ("sqlite", "redis"):
            redis.Redis.from_url(url).flushdb()
            spawn = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
                arguments = (mode, url, str(database), requests, 20, hot_keys, latency_ms)
                futures = [pool.submit(serve_requests, *arguments, seed) for seed in (1, 2)]
                reports = [future.result() for future in futures]
            loads = sum(report["loads"] for report in reports)
            seconds = max(report["seconds"] for report in reports)
            queries = sum(report["queries"] for report in reports)
            hits = sum(report["hits"] for report in reports)
            label = "SQLite only" if mode == "sqlite" else "SQLite + Redis"
            print(f"{label:<16} | {loads / seconds:>9.0f} | {queries:>14} | {hits:>10}")


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Redis to use (its namespace bench:redis_cost); default: start one")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 10 s)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    parser.add_argument(
        "--latency-ms",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[1.0, 5.0],
        help="simulated SQLite round trips to try in part 2, comma-separated (default 1,5)",
    )
    args = parser.parse_args(argv)

    info = describe_dloader(select_dloader(source_tree=False))
    print(f"python {sys.version.split()[0]}; dloader from {info.get('dloader_file')} ({info.get('dloader_choice')})")
    try:
        import redis
    except ImportError:
        print("redis-py is not installed: pip install 'dloader[bench]'")
        return 2
    from redis.utils import HIREDIS_AVAILABLE

    parser_name = "hiredis" if HIREDIS_AVAILABLE else "pure Python (pip install hiredis for a faster one)"
    print(f"redis-py {redis.__version__}, reply parser: {parser_name}")

    server = None
    url = args.url
    workdir = None
    if url is None:
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from redis_process import start_server

        if shutil.which("redis-server") is None:
            print("redis-server not found: install it (apt-get install redis-server) or pass --url")
            return 2
        workdir = tempfile.TemporaryDirectory()
        server = start_server(Path(workdir.name))
        url = server.url
    try:
        version = redis.Redis.from_url(url).info("server")["redis_version"]
        print(f"redis-server {version} at {url}")
        rounds, inner = (15, 20) if args.quick else (60, 50)
        for loop_name, factory in loop_factories(args.loop):
            with asyncio.Runner(loop_factory=factory) as runner:
                results = runner.run(measure_get_many(url, SIZES, rounds, inner))
            print_part_1(loop_name, results)
        if core_has_value_cache():
            # Spawned workers import this module; after the installed dloader, not before it.
            sys.path.append(str(REPO_ROOT))
            for latency_ms in args.latency_ms:
                measure_two_processes(url, args.quick, latency_ms)
        else:
            print("\ntwo-process loads/s: skipped, this core has no value_cache= yet")
    finally:
        if server is not None:
            server.close()
        if workdir is not None:
            workdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
