"""A batch function on aiosqlite: one ``SELECT ... WHERE id IN (...)`` per batch.

``load_users`` receives the list of ids that concurrent callers asked for and returns
a *mapping* from id to row. A mapping does not need to follow the order of the keys,
and an id absent from it (no such row) fails just that key with ``KeyError(id)``;
every other caller still gets its row. Loaders take any async callable, so a bound
method or a closure over the connection works; the same shape fits an SQLAlchemy
``AsyncSession`` (``select(User).where(User.id.in_(ids))``).

``main()`` creates an in-memory database and, as a request handler would, a
``LoaderRegistry`` for the request; ``loaders.get(repository.load_users)`` is the request's
loader of that batch function. It resolves ten concurrent ``load`` calls (with duplicates)
and a ``load_many`` with a missing id in a single query each.

Run: ``python examples/aiosqlite_loader.py`` (needs ``aiosqlite``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from dloader import LoaderRegistry


@dataclass(frozen=True)
class User:
    id: int
    name: str


class UserRepository:
    """Owns the connection; its ``load_users`` is the batch function."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self.statements: list[tuple[str, list[int]]] = []  # what went to the database

    async def load_users(self, ids: Sequence[int]) -> dict[int, User]:
        ids = list(ids)
        sql = f"SELECT id, name FROM users WHERE id IN ({', '.join('?' * len(ids))})"
        self.statements.append((sql, ids))
        async with self.connection.execute(sql, ids) as cursor:
            return {row[0]: User(row[0], row[1]) async for row in cursor}


def create_loaders() -> LoaderRegistry:
    """One registry per request; max_batch_size keeps statements under SQLite's parameter limit."""
    return LoaderRegistry(max_batch_size=500)


async def create_database(connection: aiosqlite.Connection, n_users: int = 50) -> None:
    await connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    await connection.executemany("INSERT INTO users VALUES (?, ?)", [(i, f"user {i}") for i in range(1, n_users + 1)])
    await connection.commit()


async def demo() -> UserRepository:
    async with aiosqlite.connect(":memory:") as connection:
        await create_database(connection)
        repository = UserRepository(connection)
        async with create_loaders() as loaders:  # every loader shut down on exit: nothing left running
            users = loaders.get(repository.load_users)
            # Ten concurrent loads, three of them duplicates: one statement, seven ids.
            found = await asyncio.gather(*(users.load(i) for i in (1, 2, 3, 2, 5, 8, 1, 13, 21, 3)))
            print(f"{len(found)} loads -> {len(repository.statements)} statement: {repository.statements[-1][1]}")

            # load_many: one future for the whole list; 999 does not exist.
            many = await users.load_many([5, 8, 34, 999], return_exceptions=True)
            for value in many:
                print(f"  {value!r}")
            print(f"only the missing ids were queried: {repository.statements[-1][1]}")
            try:
                await users.load(999)
            except KeyError as error:
                print(f"load(999) failed with KeyError({error.args[0]}); failures are not cached")
        return repository


def main() -> None:
    repository = asyncio.run(demo())
    print(f"{len(repository.statements)} SQL statements in all")


if __name__ == "__main__":
    main()
