"""The per-request context (loaders + batch functions) and the resolvers both executors share.

Resolvers are written the way applications write them:

* sync resolvers that *return* ``loader.load(...)`` (``Book.author``, ``Book.reviews``,
  ``User.reviews``), leaving graphql-core to await the future;
* async resolvers that ``await loader.load(...)`` (``Author.books``, ``Query.user``);
* async resolvers that first ``await`` a permission check which yields to the loop once
  or twice (``asyncio.sleep(0)``) for some objects only, chosen by id parity
  (``Review.book``, ``Review.reviewer``, ``User.friends``, ``User.favoriteAuthor``);
* one-to-many loads: a key maps to a *list* of rows (``books_by_author``,
  ``reviews_by_book``, ``reviews_by_user``, ``friend_ids``);
* ``load_many`` (``User.friends``: friend ids first, then the users).

Every batch function issues one SQL statement (``WHERE x IN (...)``) and, when the
context has a latency, first sleeps that long to simulate a database round trip.
Batch functions return a list in key order, which every implementation accepts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .data import AuthorRow, BookRow, ReviewRow, UserRow

__all__ = (
    "LOADER_CHAINS",
    "LOADER_NAMES",
    "LoaderFactory",
    "RequestContext",
    "authorize",
)

#: ``make_loader(batch_fn, name)`` returns an object with ``load(key)`` and
#: ``load_many(keys)``, both awaitable (a peer's DataLoader, or ours).
LoaderFactory = Callable[[Callable[[list[Any]], Any], str], Any]

LOADER_NAMES = (
    "users",
    "authors",
    "books",
    "friend_ids",
    "books_by_author",
    "reviews_by_book",
    "reviews_by_user",
)

#: Which loaders a field's resolver calls, in dependency order (one level each).
#: Fields not listed are plain attributes, or root lists read with one direct SELECT.
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


async def authorize(object_id: int) -> None:
    """A permission check that awaits something else before the resolver loads.

    Even ids pass at once; odd ids yield to the event loop once, and ids ≡ 3 (mod 4)
    twice, as a check that consults an async session or policy service would.
    """
    if object_id % 2:
        await asyncio.sleep(0)
        if object_id % 4 == 3:
            await asyncio.sleep(0)


class RequestContext:
    """One request's loaders, SQL statement counter and batch log."""

    def __init__(
        self,
        db: sqlite3.Connection,
        make_loader: LoaderFactory,
        latency: float = 0.0,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.db = db
        self.latency = latency
        self.clock = clock
        self.sql_statements = 0
        #: (loop iteration or -1, loader name, keys) per load_fn call, in call order.
        self.batches: list[tuple[int, str, list[Any]]] = []
        self.users = make_loader(self._load_users, "users")
        self.authors = make_loader(self._load_authors, "authors")
        self.books = make_loader(self._load_books, "books")
        self.friend_ids = make_loader(self._load_friend_ids, "friend_ids")
        self.books_by_author = make_loader(self._load_books_by_author, "books_by_author")
        self.reviews_by_book = make_loader(self._load_reviews_by_book, "reviews_by_book")
        self.reviews_by_user = make_loader(self._load_reviews_by_user, "reviews_by_user")

    # ------------------------------------------------------------ accounting

    def round_trips(self) -> Counter[str]:
        return Counter(name for _, name, _ in self.batches)

    def select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A direct statement (root fields); counted, but not a loader round trip."""
        self.sql_statements += 1
        return self.db.execute(sql, params).fetchall()

    async def _select_in(self, loader: str, sql: str, keys: list[Any]) -> list[tuple[Any, ...]]:
        keys = list(keys)
        self.batches.append((self.clock() if self.clock else -1, loader, keys))
        self.sql_statements += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        return self.db.execute(sql.format(",".join("?" * len(keys))), keys).fetchall()

    # ------------------------------------------------------------ batch functions

    async def _load_users(self, keys: list[int]) -> list[UserRow | Exception]:
        rows = await self._select_in("users", "SELECT id, name, favorite_author_id FROM users WHERE id IN ({})", keys)
        by_id = {row[0]: UserRow(*row) for row in rows}
        return [by_id[key] if key in by_id else KeyError(key) for key in keys]

    async def _load_authors(self, keys: list[int]) -> list[AuthorRow | Exception]:
        rows = await self._select_in("authors", "SELECT id, name FROM authors WHERE id IN ({})", keys)
        by_id = {row[0]: AuthorRow(*row) for row in rows}
        return [by_id[key] if key in by_id else KeyError(key) for key in keys]

    async def _load_books(self, keys: list[int]) -> list[BookRow | Exception]:
        rows = await self._select_in("books", "SELECT id, title, author_id FROM books WHERE id IN ({})", keys)
        by_id = {row[0]: BookRow(*row) for row in rows}
        return [by_id[key] if key in by_id else KeyError(key) for key in keys]

    async def _load_friend_ids(self, keys: list[int]) -> list[list[int]]:
        rows = await self._select_in(
            "friend_ids",
            "SELECT user_id, friend_id FROM friendships WHERE user_id IN ({}) ORDER BY user_id, friend_id",
            keys,
        )
        return _group(keys, rows, lambda row: row[1])

    async def _load_books_by_author(self, keys: list[int]) -> list[list[BookRow]]:
        rows = await self._select_in(
            "books_by_author", "SELECT author_id, id, title FROM books WHERE author_id IN ({}) ORDER BY id", keys
        )
        return _group(keys, rows, lambda row: BookRow(row[1], row[2], row[0]))

    async def _load_reviews_by_book(self, keys: list[int]) -> list[list[ReviewRow]]:
        rows = await self._select_in(
            "reviews_by_book",
            "SELECT book_id, id, rating, user_id FROM reviews WHERE book_id IN ({}) ORDER BY id",
            keys,
        )
        return _group(keys, rows, lambda row: ReviewRow(row[1], row[2], row[0], row[3]))

    async def _load_reviews_by_user(self, keys: list[int]) -> list[list[ReviewRow]]:
        rows = await self._select_in(
            "reviews_by_user",
            "SELECT user_id, id, rating, book_id FROM reviews WHERE user_id IN ({}) ORDER BY id",
            keys,
        )
        return _group(keys, rows, lambda row: ReviewRow(row[1], row[2], row[3], row[0]))


def _group(keys: list[Any], rows: list[tuple[Any, ...]], make: Callable[[tuple[Any, ...]], Any]) -> list[list[Any]]:
    """One-to-many: the list of rows for each key (first column), in key order."""
    groups: dict[Any, list[Any]] = {key: [] for key in keys}
    for row in rows:
        groups[row[0]].append(make(row))
    return [groups[key] for key in keys]


# ---------------------------------------------------------------- shared resolvers
# (parent object, context) -> value or awaitable; the schemas adapt the signatures.


def query_books(ctx: RequestContext, first: int) -> list[BookRow]:
    return [BookRow(*row) for row in ctx.select("SELECT id, title, author_id FROM books ORDER BY id LIMIT ?", (first,))]


def query_authors(ctx: RequestContext, first: int) -> list[AuthorRow]:
    return [AuthorRow(*row) for row in ctx.select("SELECT id, name FROM authors ORDER BY id LIMIT ?", (first,))]


def query_users(ctx: RequestContext, first: int) -> list[UserRow]:
    sql = "SELECT id, name, favorite_author_id FROM users ORDER BY id LIMIT ?"
    return [UserRow(*row) for row in ctx.select(sql, (first,))]


def query_reviews(ctx: RequestContext, first: int) -> list[ReviewRow]:
    sql = "SELECT id, rating, book_id, user_id FROM reviews ORDER BY id LIMIT ?"
    return [ReviewRow(*row) for row in ctx.select(sql, (first,))]


async def query_user(ctx: RequestContext, id: int) -> UserRow:
    return await ctx.users.load(id)


def book_author(book: BookRow, ctx: RequestContext) -> Any:
    return ctx.authors.load(book.author_id)  # sync resolver returning the future


def book_reviews(book: BookRow, ctx: RequestContext) -> Any:
    return ctx.reviews_by_book.load(book.id)  # sync, one-to-many


async def author_books(author: AuthorRow, ctx: RequestContext) -> list[BookRow]:
    return await ctx.books_by_author.load(author.id)  # async, one-to-many


async def review_book(review: ReviewRow, ctx: RequestContext) -> BookRow:
    await authorize(review.book_id)
    return await ctx.books.load(review.book_id)


async def review_reviewer(review: ReviewRow, ctx: RequestContext) -> UserRow:
    await authorize(review.id)
    return await ctx.users.load(review.user_id)


async def user_friends(user: UserRow, ctx: RequestContext) -> list[UserRow]:
    await authorize(user.id)
    friend_ids = await ctx.friend_ids.load(user.id)
    return await ctx.users.load_many(friend_ids)


def user_reviews(user: UserRow, ctx: RequestContext) -> Any:
    return ctx.reviews_by_user.load(user.id)


async def user_favorite_author(user: UserRow, ctx: RequestContext) -> AuthorRow:
    await authorize(user.id + 1)
    return await ctx.authors.load(user.favorite_author_id)
