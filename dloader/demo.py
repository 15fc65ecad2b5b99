"""See dloader remove the N+1 problem from a nested GraphQL query: ``dloader-demo``.

Builds a small library (users, authors, books, reviews, friendships) in an in-memory
SQLite database, runs one nested GraphQL query with graphql-core twice -- once with
per-request DataLoaders, once with resolvers that each issue their own SQL statement --
and prints the SQL statement counts, the timings and whether both results are equal.

Every batch statement goes through one connection and, by default, first waits a
simulated 0.2 ms network round trip (``--latency-ms``), as with a database server;
SQLite itself is in-process and nearly free.

The schema, data and resolvers are also the workload of the benchmarks' round-trip check
(``python -m benchmarks.roundtrips``), which runs more queries over them with every
DataLoader it knows; so resolvers come in every shape applications write (see ``Context``).

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

__all__ = (
    "LOADER_CHAINS",
    "QUERY",
    "SDL",
    "Context",
    "DemoResult",
    "Row",
    "build_database",
    "build_schema",
    "main",
    "run_demo",
)

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
type Query {
  books(first: Int!): [Book!]!
  authors(first: Int!): [Author!]!
  users(first: Int!): [User!]!
  reviews(first: Int!): [Review!]!
  user(id: Int!): User
}
type User { id: Int! name: String! friends: [User!]! reviews: [Review!]! favoriteAuthor: Author! }
type Author { id: Int! name: String! books: [Book!]! }
type Book { id: Int! title: String! author: Author! reviews: [Review!]! }
type Review { id: Int! rating: Int! book: Book! reviewer: User! }
"""

#: Which loaders a field's resolver calls, in dependency order (one level each); the
#: round-trip check derives each query's minimum number of batches from it.
LOADER_CHAINS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Query", "user"): ("users",),
    ("User", "friends"): ("friend_ids", "users"),
    ("User", "reviews"): ("reviews_by_user",),
    ("User", "favoriteAuthor"): ("authors",),
    ("Author", "books"): ("books_by_author",),
    ("Book", "author"): ("authors",),
    ("Book", "reviews"): ("reviews_by_book",),
    ("Review", "book"): ("books",),
    ("Review", "reviewer"): ("users",),
}


# ---------------------------------------------------------------- the database


class Row(dict[str, Any]):
    """A database row: a dict (JSON-friendly, for a Redis value cache) whose columns also read
    as attributes (for executors such as strawberry that resolve fields with ``getattr``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_TABLES = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, favorite_author_id INTEGER NOT NULL);
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, rating INTEGER NOT NULL, book_id INTEGER NOT NULL,
                      user_id INTEGER NOT NULL);
CREATE TABLE friendships (user_id INTEGER NOT NULL, friend_id INTEGER NOT NULL, PRIMARY KEY (user_id, friend_id));
CREATE INDEX books_by_author ON books (author_id);
CREATE INDEX reviews_by_book ON reviews (book_id);
CREATE INDEX reviews_by_user ON reviews (user_id);
"""


def build_database(seed: int = 20_240_611) -> sqlite3.Connection:
    """300 users, 60 authors, 400 books, 1500 reviews, symmetric friendships; the same for a seed."""
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    db.executescript(_TABLES)
    db.executemany("INSERT INTO authors VALUES (?, ?)", [(i, f"Author {i}") for i in range(1, 61)])
    db.executemany("INSERT INTO users VALUES (?, ?, ?)", [(i, f"User {i}", rng.randint(1, 60)) for i in range(1, 301)])
    db.executemany("INSERT INTO books VALUES (?, ?, ?)", [(i, f"Book {i}", rng.randint(1, 60)) for i in range(1, 401)])
    db.executemany(
        "INSERT INTO reviews VALUES (?, ?, ?, ?)",
        [(i, rng.randint(1, 5), rng.randint(1, 400), rng.randint(1, 300)) for i in range(1, 1501)],
    )
    pairs: set[tuple[int, int]] = set()
    for user in range(1, 301):
        for friend in rng.sample(range(1, 301), rng.randint(2, 5)):
            if friend != user:
                pairs.update(((user, friend), (friend, user)))
    db.executemany("INSERT INTO friendships VALUES (?, ?)", sorted(pairs))
    db.commit()
    return db


# ---------------------------------------------------------------- per-request context

#: ``make_loader(batch_function, name)``: anything with awaitable ``load(key)`` and
#: ``load_many(keys)`` -- a DataLoader, a peer's, or the demo's one-query-per-call stand-in.
LoaderFactory = Callable[[Callable[[list[Any]], Awaitable[Any]], str], Any]

USER = ("id", "name", "favorite_author_id")
AUTHOR = ("id", "name")
BOOK = ("id", "title", "author_id")
REVIEW = ("id", "rating", "book_id", "user_id")


LOADER_NAMES = ("users", "authors", "books", "friend_ids", "books_by_author", "reviews_by_book", "reviews_by_user")


class Context:
    """What ``info.context`` holds for one request: its loaders (one per batch function), the
    SQL statement count and the log of batches, ``(loop iteration or -1, loader, keys)``.

    Every batch function issues one ``SELECT ... WHERE x IN (...)``, after ``latency`` seconds
    of simulated round trip; with ``one_connection`` the statements wait for each other.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        make_loader: LoaderFactory,
        latency: float = 0.0,
        *,
        one_connection: bool = False,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.db = db
        self.latency = latency
        self.clock = clock
        self.statements = 0
        self.batches: list[tuple[int, str, list[Any]]] = []
        self._connection = asyncio.Lock() if one_connection else None
        self._make_loader = make_loader

    def __getattr__(self, name: str) -> Any:
        """A loader (``context.users``, ...), made on first use: a request makes only those it needs."""
        if name not in LOADER_NAMES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        loader = self._make_loader(getattr(self, f"_{name}"), name)
        setattr(self, name, loader)
        return loader

    def round_trips(self) -> Counter[str]:
        return Counter(name for _, name, _ in self.batches)

    def select(self, columns: tuple[str, ...], sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A root field's statement: counted, not a loader's round trip."""
        self.statements += 1
        return [Row(zip(columns, row)) for row in self.db.execute(sql, params)]

    async def _select_in(self, loader: str, columns: tuple[str, ...], sql: str, keys: list[Any]) -> list[Row]:
        keys = list(keys)
        self.batches.append((self.clock() if self.clock else -1, loader, keys))
        if self._connection is None:
            return await self._execute(columns, sql, keys)
        async with self._connection:
            return await self._execute(columns, sql, keys)

    async def _execute(self, columns: tuple[str, ...], sql: str, keys: list[Any]) -> list[Row]:
        self.statements += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        cursor = self.db.execute(sql.format(",".join("?" * len(keys))), keys)
        return [Row(zip(columns, row)) for row in cursor]

    async def _by_id(self, loader: str, table: str, columns: tuple[str, ...], keys: list[int]) -> list[Any]:
        sql = f"SELECT {', '.join(columns)} FROM {table} WHERE id IN ({{}})"
        found = {row["id"]: row for row in await self._select_in(loader, columns, sql, keys)}
        return [found.get(key) or KeyError(key) for key in keys]  # a missing id fails its own load

    async def _grouped(self, loader: str, table: str, columns: tuple[str, ...], by: str, keys: list[int]) -> list[Any]:
        """One-to-many: for each key, the list of rows whose ``by`` column equals it."""
        sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {by} IN ({{}}) ORDER BY {', '.join(columns[:2])}"
        groups: dict[int, list[Row]] = {key: [] for key in keys}
        for row in await self._select_in(loader, columns, sql, keys):
            groups[row[by]].append(row)
        return [groups[key] for key in keys]

    async def _users(self, keys: list[int]) -> list[Any]:
        return await self._by_id("users", "users", USER, keys)

    async def _authors(self, keys: list[int]) -> list[Any]:
        return await self._by_id("authors", "authors", AUTHOR, keys)

    async def _books(self, keys: list[int]) -> list[Any]:
        return await self._by_id("books", "books", BOOK, keys)

    async def _friend_ids(self, keys: list[int]) -> list[Any]:
        friendships = ("user_id", "friend_id")
        groups = await self._grouped("friend_ids", "friendships", friendships, "user_id", keys)
        return [[row["friend_id"] for row in group] for group in groups]

    async def _books_by_author(self, keys: list[int]) -> list[Any]:
        return await self._grouped("books_by_author", "books", BOOK, "author_id", keys)

    async def _reviews_by_book(self, keys: list[int]) -> list[Any]:
        return await self._grouped("reviews_by_book", "reviews", REVIEW, "book_id", keys)

    async def _reviews_by_user(self, keys: list[int]) -> list[Any]:
        return await self._grouped("reviews_by_user", "reviews", REVIEW, "user_id", keys)


class OneQueryPerCall:
    """The N+1 baseline: the same batch function, called once per ``load`` with one key."""

    def __init__(self, batch: Callable[[list[Any]], Awaitable[Any]], name: str = "") -> None:
        self._batch = batch

    async def load(self, key: Any) -> Any:
        (value,) = await self._batch([key])
        if isinstance(value, Exception):
            raise value
        return value

    async def load_many(self, keys: Sequence[Any]) -> list[Any]:
        return [await self.load(key) for key in keys]


# ---------------------------------------------------------------- resolvers
# Written the ways applications write them: sync resolvers that return ``loader.load(...)``
# for the executor to await, async ones that await it, some after a permission check that
# yields to the loop, one-to-many loaders, and ``load_many``.


async def authorize(object_id: int) -> None:
    """A permission check consulting an async service: odd ids yield once, ids = 3 mod 4 twice."""
    if object_id % 2:
        await asyncio.sleep(0)
        if object_id % 4 == 3:
            await asyncio.sleep(0)


def resolve_books(_root: Any, info: Any, first: int) -> list[Row]:
    return info.context.select(BOOK, "SELECT id, title, author_id FROM books ORDER BY id LIMIT ?", (first,))  # type: ignore[no-any-return]


def resolve_authors(_root: Any, info: Any, first: int) -> list[Row]:
    return info.context.select(AUTHOR, "SELECT id, name FROM authors ORDER BY id LIMIT ?", (first,))  # type: ignore[no-any-return]


def resolve_users(_root: Any, info: Any, first: int) -> list[Row]:
    sql = "SELECT id, name, favorite_author_id FROM users ORDER BY id LIMIT ?"
    return info.context.select(USER, sql, (first,))  # type: ignore[no-any-return]


def resolve_reviews(_root: Any, info: Any, first: int) -> list[Row]:
    sql = "SELECT id, rating, book_id, user_id FROM reviews ORDER BY id LIMIT ?"
    return info.context.select(REVIEW, sql, (first,))  # type: ignore[no-any-return]


async def resolve_user(_root: Any, info: Any, id: int) -> Any:
    return await info.context.users.load(id)


def resolve_book_author(book: Row, info: Any) -> Any:
    return info.context.authors.load(book["author_id"])  # sync: the executor awaits the future


def resolve_book_reviews(book: Row, info: Any) -> Any:
    return info.context.reviews_by_book.load(book["id"])  # sync, one-to-many


async def resolve_author_books(author: Row, info: Any) -> Any:
    return await info.context.books_by_author.load(author["id"])  # async, one-to-many


async def resolve_review_book(review: Row, info: Any) -> Any:
    await authorize(review["book_id"])
    return await info.context.books.load(review["book_id"])


async def resolve_reviewer(review: Row, info: Any) -> Any:
    await authorize(review["id"])
    return await info.context.users.load(review["user_id"])


async def resolve_friends(user: Row, info: Any) -> Any:
    await authorize(user["id"])
    friend_ids = await info.context.friend_ids.load(user["id"])
    return await info.context.users.load_many(friend_ids)


def resolve_user_reviews(user: Row, info: Any) -> Any:
    return info.context.reviews_by_user.load(user["id"])


async def resolve_favorite_author(user: Row, info: Any) -> Any:
    await authorize(user["id"] + 1)
    return await info.context.authors.load(user["favorite_author_id"])


RESOLVERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("Query", "books"): resolve_books,
    ("Query", "authors"): resolve_authors,
    ("Query", "users"): resolve_users,
    ("Query", "reviews"): resolve_reviews,
    ("Query", "user"): resolve_user,
    ("User", "friends"): resolve_friends,
    ("User", "reviews"): resolve_user_reviews,
    ("User", "favoriteAuthor"): resolve_favorite_author,
    ("Author", "books"): resolve_author_books,
    ("Book", "author"): resolve_book_author,
    ("Book", "reviews"): resolve_book_reviews,
    ("Review", "book"): resolve_review_book,
    ("Review", "reviewer"): resolve_reviewer,
}


def build_schema() -> graphql.GraphQLSchema:
    schema = graphql.build_schema(SDL)
    for (type_name, field_name), resolve in RESOLVERS.items():
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
        async with LoaderRegistry(loader_cls=DataLoader) as loaders:

            def make_loader(batch_function: Callable[[list[Any]], Awaitable[Any]], name: str) -> Any:
                if value_caches is not None:  # --redis: each loader shares its values under its own namespace
                    loaders.configure(batch_function, value_cache=value_caches(name))
                return loaders.get(batch_function)

            context = Context(db, make_loader, latency, one_connection=True)
            result = await graphql.graphql(schema, QUERY, context_value=context)
    else:
        context = Context(db, OneQueryPerCall, latency, one_connection=True)
        result = await graphql.graphql(schema, QUERY, context_value=context)
    seconds = time.perf_counter() - start
    if result.errors:
        raise RuntimeError(f"{label}: the query failed: {result.errors[0]}")
    return Run(label, context.statements, seconds, result.data, dict(sorted(context.round_trips().items())))


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
    print(
        f"one connection, {result.latency_ms:g} ms simulated round trip per SQL statement after the root query.",
        file=out,
    )
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
