"""See dloader remove the N+1 problem from a nested GraphQL query: ``dloader-demo``.

Builds a small library (authors, books, reviews, users) in an in-memory SQLite
database, runs one nested GraphQL query with graphql-core twice -- once with
per-request DataLoaders, once with resolvers that each issue their own SQL
statement -- and prints the SQL statement counts, the timings and whether both
results are equal.

Every statement goes through one connection and, by default, first waits a
simulated 0.2 ms network round trip (``--latency-ms``), as with a database
server; SQLite itself is in-process and nearly free.

Needs graphql-core (``pip install '.[demo]'`` in a checkout). ``dloader-demo``, the
installed command, runs the installed package; ``python -m dloader.demo`` works too,
but from a checkout's root it imports the source tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import graphql
except ImportError as _error:  # pragma: no cover - exercised without the extra
    # Not `pip install 'dloader[demo]'`: until this project is released, PyPI's dloader is an
    # unrelated package without that extra.
    _MESSAGE = (
        "dloader.demo needs graphql-core, which is not installed: "
        "pip install graphql-core (in a checkout of dloader: pip install '.[demo]')"
    )
    # Run as a command (`python -m dloader.demo`, or the `dloader-demo` script, which imports
    # this module from its own __main__), a missing extra deserves one line, not a traceback.
    if __name__ == "__main__" or (sys.argv and os.path.basename(sys.argv[0]).startswith("dloader-demo")):
        sys.exit(_MESSAGE)
    raise ImportError(_MESSAGE) from _error

from . import DataLoader, LoaderRegistry, __version__

__all__ = ("QUERY", "DemoResult", "main", "run_demo")

QUERY = """
{
  books(first: 80) {
    title
    author { name books { title } }
    reviews { rating reviewer { name } }
  }
}
"""

SDL = """
type Query { books(first: Int!): [Book!]! }
type Book { id: Int! title: String! author: Author! reviews: [Review!]! }
type Author { id: Int! name: String! books: [Book!]! }
type Review { id: Int! rating: Int! reviewer: User! }
type User { id: Int! name: String! }
"""


# ---------------------------------------------------------------- the database


def build_database(seed: int = 7) -> sqlite3.Connection:
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    db.executescript(
        """
        CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL);
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE reviews (id INTEGER PRIMARY KEY, book_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
                              rating INTEGER NOT NULL);
        CREATE INDEX books_author ON books (author_id);
        CREATE INDEX reviews_book ON reviews (book_id);
        """
    )
    db.executemany("INSERT INTO authors VALUES (?, ?)", [(i, f"Author {i}") for i in range(1, 41)])
    db.executemany("INSERT INTO users VALUES (?, ?)", [(i, f"User {i}") for i in range(1, 201)])
    db.executemany("INSERT INTO books VALUES (?, ?, ?)", [(i, f"Book {i}", rng.randint(1, 40)) for i in range(1, 301)])
    db.executemany(
        "INSERT INTO reviews VALUES (?, ?, ?, ?)",
        [(i, rng.randint(1, 300), rng.randint(1, 200), rng.randint(1, 5)) for i in range(1, 901)],
    )
    db.commit()
    return db


# ---------------------------------------------------------------- per-request context


class Database:
    """One connection; every statement costs a simulated round trip, one at a time."""

    def __init__(self, db: sqlite3.Connection, latency: float) -> None:
        self.db = db
        self.latency = latency
        self.statements = 0
        self._lock = asyncio.Lock()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._lock:
            self.statements += 1
            if self.latency:
                await asyncio.sleep(self.latency)
            return self.db.execute(sql, params).fetchall()

    async def fetch_in(self, sql: str, keys: list[Any]) -> list[tuple[Any, ...]]:
        return await self.fetch(sql.format(",".join("?" * len(keys))), keys)


class Context:
    """What ``info.context`` holds for one request: its database handle, its batch functions
    and its loaders (a LoaderRegistry: ``loaders.get(batch_function).load(key)``)."""

    def __init__(self, database: Database, loaders: Any) -> None:
        self.db = database
        self.loaders = loaders
        self.round_trips: Counter[str] = Counter()

    def load(self, batch_function: Callable[[list[Any]], Awaitable[Any]], key: Any) -> Any:
        return self.loaders.get(batch_function).load(key)

    async def _authors(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        self.round_trips["authors"] += 1
        rows = await self.db.fetch_in("SELECT id, name FROM authors WHERE id IN ({})", ids)
        return {id_: {"id": id_, "name": name} for id_, name in rows}  # a mapping: a missing id fails with KeyError

    async def _users(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        self.round_trips["users"] += 1
        rows = await self.db.fetch_in("SELECT id, name FROM users WHERE id IN ({})", ids)
        return {id_: {"id": id_, "name": name} for id_, name in rows}

    async def _books_by_author(self, author_ids: list[int]) -> list[list[dict[str, Any]]]:
        self.round_trips["books_by_author"] += 1
        sql = "SELECT author_id, id, title FROM books WHERE author_id IN ({}) ORDER BY id"
        found: dict[int, list[dict[str, Any]]] = {id_: [] for id_ in author_ids}
        for author_id, id_, title in await self.db.fetch_in(sql, author_ids):
            found[author_id].append({"id": id_, "title": title, "author_id": author_id})
        return [found[id_] for id_ in author_ids]  # one list per key: a one-to-many load

    async def _reviews_by_book(self, book_ids: list[int]) -> list[list[dict[str, Any]]]:
        self.round_trips["reviews_by_book"] += 1
        sql = "SELECT book_id, id, rating, user_id FROM reviews WHERE book_id IN ({}) ORDER BY id"
        found: dict[int, list[dict[str, Any]]] = {id_: [] for id_ in book_ids}
        for book_id, id_, rating, user_id in await self.db.fetch_in(sql, book_ids):
            found[book_id].append({"id": id_, "rating": rating, "user_id": user_id})
        return [found[id_] for id_ in book_ids]


class OneQueryPerCall:
    """The N+1 baseline: the same batch function, called once per ``load`` with one key."""

    def __init__(self, batch: Callable[[list[Any]], Awaitable[Any]]) -> None:
        self._batch = batch

    async def load(self, key: Any) -> Any:
        results = await self._batch([key])
        return results[key] if isinstance(results, dict) else results[0]


class OneQueryPerCallRegistry:
    """The baseline's stand-in for a LoaderRegistry: ``get`` gives a OneQueryPerCall."""

    def get(self, batch: Callable[[list[Any]], Awaitable[Any]]) -> OneQueryPerCall:
        return OneQueryPerCall(batch)


# ---------------------------------------------------------------- schema and resolvers


async def _resolve_books(_root: Any, info: Any, first: int) -> list[dict[str, Any]]:
    rows = await info.context.db.fetch("SELECT id, title, author_id FROM books ORDER BY id LIMIT ?", (first,))
    return [{"id": id_, "title": title, "author_id": author_id} for id_, title, author_id in rows]


def _resolve_book_author(book: dict[str, Any], info: Any) -> Any:
    context = info.context
    return context.load(context._authors, book["author_id"])  # a sync resolver may return the future


async def _resolve_author_books(author: dict[str, Any], info: Any) -> Any:
    context = info.context
    return await context.load(context._books_by_author, author["id"])


def _resolve_book_reviews(book: dict[str, Any], info: Any) -> Any:
    context = info.context
    return context.load(context._reviews_by_book, book["id"])


async def _resolve_reviewer(review: dict[str, Any], info: Any) -> Any:
    if review["id"] % 2:  # e.g. a permission check that awaits before loading
        await asyncio.sleep(0)
    context = info.context
    return await context.load(context._users, review["user_id"])


def build_schema() -> graphql.GraphQLSchema:
    schema = graphql.build_schema(SDL)
    resolvers: dict[tuple[str, str], Callable[..., Any]] = {
        ("Query", "books"): _resolve_books,
        ("Book", "author"): _resolve_book_author,
        ("Book", "reviews"): _resolve_book_reviews,
        ("Author", "books"): _resolve_author_books,
        ("Review", "reviewer"): _resolve_reviewer,
    }
    for (type_name, field_name), resolve in resolvers.items():
        object_type = schema.type_map[type_name]
        assert isinstance(object_type, graphql.GraphQLObjectType)
        object_type.fields[field_name].resolve = resolve
    return schema


# ---------------------------------------------------------------- running it


@dataclass
class Run:
    label: str
    statements: int
    seconds: float
    data: Any
    round_trips: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoResult:
    with_dloader: Run
    without_dloader: Run
    latency_ms: float

    @property
    def equal(self) -> bool:
        return bool(self.with_dloader.data == self.without_dloader.data)


async def _execute(
    schema: graphql.GraphQLSchema,
    db: sqlite3.Connection,
    latency: float,
    batched: bool,
    label: str,
    value_caches: Callable[[str], Any] | None = None,
) -> Run:
    start = time.perf_counter()
    if batched:
        # Loaders belong to one request: a registry per request creates them on first use
        # and shuts them down at the end.
        context = Context(Database(db, latency), None)
        options: dict[Any, Any] = {}
        if value_caches is not None:  # --redis: each loader shares its values under its own namespace
            for name in ("authors", "books_by_author", "reviews_by_book", "users"):
                options[getattr(context, f"_{name}")] = {"value_cache": value_caches(name)}
        async with LoaderRegistry(loader_cls=DataLoader, options=options) as loaders:
            context.loaders = loaders
            result = await graphql.graphql(schema, QUERY, context_value=context)
    else:
        context = Context(Database(db, latency), OneQueryPerCallRegistry())
        result = await graphql.graphql(schema, QUERY, context_value=context)
    seconds = time.perf_counter() - start
    if result.errors:
        raise RuntimeError(f"{label}: the query failed: {result.errors[0]}")
    return Run(label, context.db.statements, seconds, result.data, dict(sorted(context.round_trips.items())))


async def _run_both(latency_ms: float) -> DemoResult:
    schema = build_schema()
    db = build_database()
    try:
        latency = latency_ms / 1000
        await _execute(schema, db, 0.0, True, "warm-up")  # first-call costs out of the timings
        with_loaders = await _execute(schema, db, latency, True, "with dloader")
        without = await _execute(schema, db, latency, False, "without dloader")
    finally:
        db.close()
    return DemoResult(with_loaders, without, latency_ms)


def run_demo(latency_ms: float = 0.2) -> DemoResult:
    """Run the query with and without dloader on a fresh event loop; return both runs."""
    return asyncio.run(_run_both(latency_ms))


# ---------------------------------------------------------------- --redis: a cache shared by processes


async def _run_with_redis(url: str, namespace: str, latency_ms: float) -> tuple[int, dict[str, int], Any]:
    import redis.asyncio  # only with --redis (extra: redis)

    from .redis import RedisValueCache

    client = redis.asyncio.Redis.from_url(url)
    schema = build_schema()
    db = build_database()
    try:

        def value_cache(loader: str) -> RedisValueCache:
            return RedisValueCache(client, namespace=f"{namespace}:{loader}", ttl=300, timeout=1.0)

        run = await _execute(schema, db, latency_ms / 1000, True, "shared cache", value_cache)
    finally:
        db.close()
        await client.aclose()
    return run.statements, run.round_trips, run.data


def _process_with_redis(url: str, namespace: str, latency_ms: float) -> tuple[int, dict[str, int], Any]:
    """One server process: its own event loop, loaders and SQLite connection, the shared Redis."""
    return asyncio.run(_run_with_redis(url, namespace, latency_ms))


def run_shared_cache(url: str, latency_ms: float, out: Any = None) -> bool:
    """Run the query in two new processes that share a Redis cache; report what each queried."""
    import concurrent.futures
    import multiprocessing
    import uuid

    out = out if out is not None else sys.stdout
    namespace = f"dloader-demo:{uuid.uuid4().hex[:12]}"  # a fresh namespace: nothing cached yet
    print(f"\nshared cache on Redis ({url}, namespace {namespace}): the same query in two new processes", file=out)
    results = []
    for label in ("first process", "second process"):
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            statements, trips, data = pool.submit(_process_with_redis, url, namespace, latency_ms).result()
        results.append(data)
        loaders = ", ".join(f"{name} {n}" for name, n in trips.items()) or "none"
        print(f"{label:<15} {statements:>3} SQL statements (load_fn calls: {loaders})", file=out)
    equal = bool(results[0] == results[1])
    print(f"results equal: {'yes' if equal else 'NO'}; the second process read the loaders' rows from Redis", file=out)
    return equal


def implementation_name(loader_class: type | None = None) -> str:
    """Which DataLoader runs: "compiled" (the Cython extension) or "python" (the pure twin)."""
    loader_class = DataLoader if loader_class is None else loader_class
    return "compiled" if loader_class.__module__ == "dloader._loader_c" else "python"


def report(result: DemoResult, out: Any = None) -> None:
    out = out if out is not None else sys.stdout
    package = os.path.dirname(os.path.abspath(__file__))
    print(f"dloader {__version__}, implementation: {implementation_name()} (from {package})", file=out)
    print(
        f"demo with graphql-core {graphql.__version__}: a nested query over an in-memory SQLite library,",
        file=out,
    )
    print(f"one connection, {result.latency_ms:g} ms simulated round trip per SQL statement.", file=out)
    print("\nquery:" + QUERY, file=out)
    print(f"{'':<17}{'SQL statements':>15}{'time':>12}", file=out)
    for run in (result.without_dloader, result.with_dloader):
        print(f"{run.label:<17}{run.statements:>15}{run.seconds * 1000:>9.1f} ms", file=out)
    ratio = result.without_dloader.statements / max(result.with_dloader.statements, 1)
    speedup = result.without_dloader.seconds / max(result.with_dloader.seconds, 1e-9)
    print(f"\n{ratio:.0f}x fewer statements, {speedup:.1f}x faster with dloader.", file=out)
    trips = ", ".join(f"{name} {n}" for name, n in result.with_dloader.round_trips.items())
    print(f"dloader batches (load_fn calls) per loader: {trips} (one per loader per level)", file=out)
    print(f"results equal: {'yes' if result.equal else 'NO'}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dloader-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--latency-ms", type=float, default=0.2, help="simulated round trip per SQL statement (default 0.2)"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="also run the query in two new processes sharing a cache on this Redis "
        "(e.g. redis://localhost:6379/0; needs the redis extra)",
    )
    args = parser.parse_args(argv)
    if args.redis is not None:
        try:
            import redis  # noqa: F401
        except ImportError:
            print(
                "--redis needs redis-py: pip install redis (or pip install '.[redis]' in a checkout)", file=sys.stderr
            )
            return 2
    result = run_demo(args.latency_ms)
    report(result)
    shared_equal = True if args.redis is None else run_shared_cache(args.redis, args.latency_ms)
    return 0 if result.equal and shared_equal else 1


if __name__ == "__main__":
    sys.exit(main())
