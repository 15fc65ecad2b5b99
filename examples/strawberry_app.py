"""Strawberry + dloader: DataLoaders created per request, reached through ``info.context``.

A DataLoader caches what it loaded, so it must live exactly as long as one request:
a loader shared between requests would serve one user's data to another and never
see updates. Strawberry builds the context per request with a context getter; put the
loaders there:

* FastAPI: ``GraphQLRouter(schema, context_getter=get_context)`` (make ``Context``
  subclass ``strawberry.fastapi.BaseContext`` if you also want ``request`` on it);
* ASGI: subclass ``strawberry.asgi.GraphQL`` and return ``await get_context()`` from
  its ``get_context(self, request, response)`` method;
* tests and scripts: ``await schema.execute(query, context_value=await get_context())``,
  as ``main()`` does below.

Resolvers then call ``info.context.<loader>.load(key)``: every author requested by the
books of one query level is fetched with one call of ``load_authors``, and the books of
all those authors with one call of ``load_books_by_author`` -- one round trip per
loader per level, however many objects the query touches.

Run: ``python examples/strawberry_app.py`` (needs ``strawberry-graphql``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import strawberry

from dloader import DataLoader

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
        return await info.context.books_by_author.load(self.id)


@strawberry.type
class Book:
    id: int
    title: str
    author_id: strawberry.Private[int]

    @strawberry.field
    async def author(self, info: strawberry.Info[Context, None]) -> Author:
        return await info.context.authors.load(self.author_id)


# ---------------------------------------------------------------- per-request context


@dataclass
class Context:
    """Everything one request needs; a new one per request."""

    batches: list[tuple[str, list[int]]] = field(default_factory=list)  # what the "database" was asked
    authors: DataLoader[int, Author] = field(init=False)
    books_by_author: DataLoader[int, list[Book]] = field(init=False)

    def __post_init__(self) -> None:
        self.authors = DataLoader(self.load_authors, name="authors")
        self.books_by_author = DataLoader(self.load_books_by_author, name="books_by_author")

    async def load_authors(self, ids: list[int]) -> dict[int, Author]:
        self.batches.append(("authors", ids))
        await asyncio.sleep(0.001)  # one round trip: SELECT ... WHERE id IN (...)
        # A mapping is fine: an id missing from it fails that key with KeyError.
        return {id_: Author(id=id_, name=AUTHORS[id_]) for id_ in ids if id_ in AUTHORS}

    async def load_books_by_author(self, author_ids: list[int]) -> list[list[Book]]:
        self.batches.append(("books_by_author", author_ids))
        await asyncio.sleep(0.001)
        return [  # one list per key, in key order: a one-to-many load
            [Book(id=id_, title=title, author_id=author) for id_, (title, author) in BOOKS.items() if author == key]
            for key in author_ids
        ]


async def get_context() -> Context:
    """The context getter: called by the integration once per request."""
    return Context()


@strawberry.type
class Query:
    @strawberry.field
    def books(self) -> list[Book]:
        return [Book(id=id_, title=title, author_id=author) for id_, (title, author) in BOOKS.items()]

    @strawberry.field
    async def author(self, info: strawberry.Info[Context, None], id: int) -> Author | None:
        try:
            return await info.context.authors.load(id)
        except KeyError:
            return None


schema = strawberry.Schema(query=Query)

QUERY = "{ books { title author { name books { title } } } }"


async def run_query(query: str = QUERY) -> tuple[strawberry.types.ExecutionResult, Context]:
    context = await get_context()
    result = await schema.execute(query, context_value=context)
    return result, context


def main() -> None:
    result, context = asyncio.run(run_query())
    assert result.errors is None, result.errors
    assert result.data is not None
    for book in result.data["books"]:
        author = book["author"]
        print(f"{book['title']!r} by {author['name']} (also: {', '.join(b['title'] for b in author['books'])})")
    print(f"\n{len(result.data['books'])} books, {len(context.batches)} batched loads:")
    for loader, keys in context.batches:
        print(f"  {loader}({keys})")


if __name__ == "__main__":
    main()
