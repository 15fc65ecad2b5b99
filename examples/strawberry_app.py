"""Strawberry + dloader: a LoaderRegistry per operation, reached as ``info.context.loaders``.

A DataLoader caches what it loaded, so it must live exactly as long as one request: a
loader shared between requests would serve one user's data to another and never see
updates. ``LoaderExtension`` gives every operation a fresh ``LoaderRegistry`` and shuts it
down when the operation ends; resolvers ask it for the loader of a batch function:

    schema = strawberry.Schema(query=Query, extensions=[LoaderExtension])
    ...
    return await info.context.loaders.get(load_authors).load(self.author_id)

With strawberry's default contexts (dicts, for ``strawberry.asgi.GraphQL`` and FastAPI's
``GraphQLRouter``) it is ``info.context["loaders"]``; a context class like ``Context``
below gets the attribute. Every author requested by the books of one query level is
fetched with one call of ``load_authors``, and the books of all those authors with one
call of ``load_books_by_author``: one round trip per loader per level, however many
objects the query touches.

Run: ``python examples/strawberry_app.py`` (needs ``strawberry-graphql``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import strawberry

from dloader import LoaderRegistry
from dloader.integrations.strawberry import LoaderExtension

# ---------------------------------------------------------------- a stand-in database

AUTHORS = {1: "Ursula K. Le Guin", 2: "Iain M. Banks", 3: "Octavia E. Butler"}
BOOKS = {  # id: (title, author id)
    10: ("A Wizard of Earthsea", 1),
    11: ("The Dispossessed", 1),
    20: ("Consider Phlebas", 2),
    21: ("The Player of Games", 2),
    30: ("Kindred", 3),
    31: ("Parable of the Sower", 3),
}


@strawberry.type
class Author:
    id: int
    name: str

    @strawberry.field
    async def books(self, info: strawberry.Info[Context, None]) -> list[Book]:
        return await info.context.loaders.get(load_books_by_author).load(self.id)


@strawberry.type
class Book:
    id: int
    title: str
    author_id: strawberry.Private[int]

    @strawberry.field
    async def author(self, info: strawberry.Info[Context, None]) -> Author:
        return await info.context.loaders.get(load_authors).load(self.author_id)


# ---------------------------------------------------------------- batch functions and context

#: What the "database" was asked, in order: (batch function, keys).
BATCHES: list[tuple[str, list[int]]] = []


async def load_authors(ids: list[int]) -> dict[int, Author]:
    BATCHES.append(("authors", ids))
    await asyncio.sleep(0.001)  # one round trip: SELECT ... WHERE id IN (...)
    # A mapping is fine: an id missing from it fails that key with KeyError.
    return {id_: Author(id=id_, name=AUTHORS[id_]) for id_ in ids if id_ in AUTHORS}


async def load_books_by_author(author_ids: list[int]) -> list[list[Book]]:
    BATCHES.append(("books_by_author", author_ids))
    await asyncio.sleep(0.001)
    return [  # one list per key, in key order: a one-to-many load
        [Book(id=id_, title=title, author_id=author) for id_, (title, author) in BOOKS.items() if author == key]
        for key in author_ids
    ]


@dataclass
class Context:
    """Per-request state: its registry, which LoaderExtension shuts down when the operation ends."""

    loaders: LoaderRegistry = field(default_factory=LoaderRegistry)


@strawberry.type
class Query:
    @strawberry.field
    def books(self) -> list[Book]:
        return [Book(id=id_, title=title, author_id=author) for id_, (title, author) in BOOKS.items()]

    @strawberry.field
    async def author(self, info: strawberry.Info[Context, None], id: int) -> Author | None:
        try:
            return await info.context.loaders.get(load_authors).load(id)
        except KeyError:
            return None


schema = strawberry.Schema(query=Query, extensions=[LoaderExtension])

QUERY = "{ books { title author { name books { title } } } }"


async def run_query(
    query: str = QUERY, context: Context | None = None
) -> tuple[strawberry.types.ExecutionResult, Context]:
    """What an integration does per request: a new context, then execute."""
    context = Context() if context is None else context
    result = await schema.execute(query, context_value=context)
    return result, context


def main() -> None:
    result, context = asyncio.run(run_query())
    loaders = list(context.loaders)
    assert result.errors is None, result.errors
    assert result.data is not None
    for book in result.data["books"]:
        author = book["author"]
        print(f"{book['title']!r} by {author['name']} (also: {', '.join(b['title'] for b in author['books'])})")
    print(f"\n{len(result.data['books'])} books, {len(BATCHES)} batched loads by {len(loaders)} loaders:")
    for loader, keys in BATCHES:
        print(f"  {loader}({keys})")


if __name__ == "__main__":
    main()
