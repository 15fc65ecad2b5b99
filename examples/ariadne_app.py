"""Ariadne + dloader: a LoaderRegistry per request in ``context_value``, shut down when the request ends.

Ariadne builds the context in ``GraphQLHTTPHandler``; overriding ``execute_graphql_query``
wraps each query in ``async with LoaderRegistry() as loaders:`` (four lines), so every
request gets fresh loaders and none outlives it:

    class LoaderHTTPHandler(GraphQLHTTPHandler):
        async def execute_graphql_query(self, request, data, **options):
            async with LoaderRegistry() as loaders:
                options["context_value"] = {"request": request, "loaders": loaders}
                return await super().execute_graphql_query(request, data, **options)

Resolvers then call ``info.context["loaders"].get(load_authors).load(author_id)``.
``app`` is an ASGI application: ``uvicorn examples.ariadne_app:app``.

Run: ``python examples/ariadne_app.py`` (needs ``ariadne``; it sends two queries to the app
through ``httpx.ASGITransport``, so ``httpx`` too).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ariadne import ObjectType, QueryType, make_executable_schema
from ariadne.asgi import GraphQL
from ariadne.asgi.handlers import GraphQLHTTPHandler
from graphql import GraphQLResolveInfo

from dloader import LoaderRegistry

AUTHORS = {1: "Ursula K. Le Guin", 2: "Iain M. Banks", 3: "Octavia E. Butler"}
BOOKS = {10: ("A Wizard of Earthsea", 1), 11: ("The Dispossessed", 1), 20: ("Consider Phlebas", 2), 30: ("Kindred", 3)}

#: What the "database" was asked: (batch function, keys).
BATCHES: list[tuple[str, list[int]]] = []

SDL = """
type Query { books: [Book!]! }
type Book { title: String! author: Author! }
type Author { name: String! books: [Book!]! }
"""


async def load_authors(ids: list[int]) -> list[dict[str, Any]]:
    BATCHES.append(("authors", ids))
    await asyncio.sleep(0.001)  # one round trip
    return [{"id": id_, "name": AUTHORS[id_]} for id_ in ids]


async def load_books_by_author(author_ids: list[int]) -> list[list[dict[str, Any]]]:
    BATCHES.append(("books_by_author", author_ids))
    await asyncio.sleep(0.001)
    return [[{"title": title, "author_id": a} for title, a in BOOKS.values() if a == key] for key in author_ids]


query = QueryType()
book = ObjectType("Book")
author = ObjectType("Author")


@query.field("books")
def resolve_books(_root: None, _info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    return [{"title": title, "author_id": author_id} for title, author_id in BOOKS.values()]


@book.field("author")
def resolve_book_author(book: dict[str, Any], info: GraphQLResolveInfo) -> Any:
    return info.context["loaders"].get(load_authors).load(book["author_id"])


@author.field("books")
def resolve_author_books(author: dict[str, Any], info: GraphQLResolveInfo) -> Any:
    return info.context["loaders"].get(load_books_by_author).load(author["id"])


schema = make_executable_schema(SDL, query, book, author)


class LoaderHTTPHandler(GraphQLHTTPHandler):
    """Runs each query with a fresh LoaderRegistry in its context, shut down afterwards."""

    async def execute_graphql_query(self, request: Any, data: Any, **options: Any) -> Any:
        async with LoaderRegistry() as loaders:
            options["context_value"] = {"request": request, "loaders": loaders}
            return await super().execute_graphql_query(request, data, **options)


app = GraphQL(schema, http_handler=LoaderHTTPHandler())

QUERY = "{ books { title author { name books { title } } } }"


async def post_queries(n: int = 2) -> list[dict[str, Any]]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ariadne.example") as client:
        responses = await asyncio.gather(*(client.post("/", json={"query": QUERY}) for _ in range(n)))
    return [response.json() for response in responses]


def main() -> None:
    results = asyncio.run(post_queries())
    for index, result in enumerate(results):
        assert "errors" not in result, result
        print(f"request {index}: {len(result['data']['books'])} books")
    print(f"{len(BATCHES)} batched loads for {len(results)} requests:")
    for loader, keys in BATCHES:
        print(f"  {loader}({keys})")


if __name__ == "__main__":
    main()
