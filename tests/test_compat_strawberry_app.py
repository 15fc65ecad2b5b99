"""A real strawberry ASGI app, written for strawberry's DataLoader, switched to dloader.compat.strawberry.

Same app code, only the DataLoader class differs (what changing the import does): the responses
must be equal, the shim's batch calls at or below strawberry's, and no warnings (they are errors).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

strawberry = pytest.importorskip("strawberry")
httpx = pytest.importorskip("httpx")

from strawberry.asgi import GraphQL  # noqa: E402
from strawberry.dataloader import DataLoader as StrawberryDataLoader  # noqa: E402

from dloader.compat import shim_module  # noqa: E402

AUTHORS = {1: "ada", 2: "grace", 3: "linus"}
POSTS = {1: [10, 11], 2: [12], 3: [13, 14]}
COMMENTS = {10: ["nice"], 11: [], 12: ["why", "ok"], 13: ["+1"], 14: ["wow"]}

QUERY = """
{
  authors(ids: [1, 2, 3, 2]) {
    id
    name
    posts { id author { name } comments }
    missing: friend
  }
}
"""


async def check_permission(subject: int) -> None:
    """Resolvers commonly await something before loading; here 0 to 3 loop iterations, by subject."""
    for _ in range(subject % 4):
        await asyncio.sleep(0)


@strawberry.type
class Post:
    id: int
    author_id: strawberry.Private[int]

    @strawberry.field
    async def author(self, info: strawberry.Info) -> Author:
        await check_permission(self.id)
        return Author(id=self.author_id, name=await info.context["authors"].load(self.author_id))

    @strawberry.field
    async def comments(self, info: strawberry.Info) -> list[str]:
        result: list[str] = await info.context["comments"].load(self.id)
        return result


@strawberry.type
class Author:
    id: int
    name: str

    @strawberry.field
    async def posts(self, info: strawberry.Info) -> list[Post]:
        await check_permission(self.id)
        ids = await info.context["posts"].load(self.id)
        return [Post(id=id_, author_id=self.id) for id_ in ids]

    @strawberry.field
    async def friend(self, info: strawberry.Info) -> str | None:
        try:
            return str(await info.context["authors"].load(99))
        except KeyError:
            return None


@strawberry.type
class Query:
    @strawberry.field
    async def authors(self, info: strawberry.Info, ids: list[int]) -> list[Author]:
        names = await info.context["authors"].load_many(ids)
        return [Author(id=id_, name=name) for id_, name in zip(ids, names)]


SCHEMA = strawberry.Schema(query=Query)


def build_app(data_loader: Any, calls: list[tuple[str, list[Any]]]) -> Any:
    """The app as written against strawberry.dataloader: its loaders in the context, per request."""

    async def load_authors(ids: list[int]) -> list[Any]:
        calls.append(("authors", list(ids)))
        return [AUTHORS.get(id_, KeyError(id_)) for id_ in ids]

    async def load_posts(author_ids: list[int]) -> list[list[int]]:
        calls.append(("posts", list(author_ids)))
        return [POSTS[id_] for id_ in author_ids]

    async def load_comments(post_ids: list[int]) -> list[list[str]]:
        calls.append(("comments", list(post_ids)))
        return [COMMENTS[id_] for id_ in post_ids]

    class App(GraphQL[dict[str, Any], None]):
        async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
            return {
                "authors": data_loader(load_fn=load_authors),
                "posts": data_loader(load_fn=load_posts),
                "comments": data_loader(load_fn=load_comments, max_batch_size=100),
            }

    return App(SCHEMA)


async def run_requests(data_loader: Any, concurrent: int) -> tuple[list[Any], list[tuple[str, list[Any]]]]:
    calls: list[tuple[str, list[Any]]] = []
    transport = httpx.ASGITransport(app=build_app(data_loader, calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        responses = await asyncio.gather(*(client.post("/graphql", json={"query": QUERY}) for _ in range(concurrent)))
    return [response.json() for response in responses], calls


@pytest.mark.parametrize("concurrent", [1, 3])
async def test_switching_the_import_keeps_results_and_round_trips(loader_cls: type, concurrent: int) -> None:
    shim = shim_module("strawberry", loader_cls).DataLoader
    original_results, original_calls = await run_requests(StrawberryDataLoader, concurrent)
    shim_results, shim_calls = await run_requests(shim, concurrent)
    assert "errors" not in original_results[0]
    assert original_results[0]["data"]["authors"][0]["posts"][0]["comments"] == ["nice"]
    assert shim_results == original_results
    assert len(shim_calls) <= len(original_calls)
    # Per request: one call per loader per level (authors, posts, comments, authors again for
    # post.author with the unknown friend 99 among them).
    assert len(shim_calls) == 4 * concurrent


# ---------------------------------------------------------------- strawberry #3606, with a real AsyncSession


async def test_task_group_failure_cancels_only_its_own_loads(loader_cls: type) -> None:
    """A TaskGroup whose sibling fails cancels its own loads only; no query runs on the closed session.

    strawberry #3606: with strawberry's DataLoader the group's cancellation cancelled the future
    shared with every other caller of the key, and a batch could still run afterwards.
    """
    pytest.importorskip("aiosqlite")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    shim = shim_module("strawberry", loader_cls).DataLoader
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    queries: list[tuple[list[int], bool]] = []  # (keys, whether the session was closed by then)
    session_closed = False
    try:
        async with engine.begin() as connection:
            await connection.execute(sqlalchemy.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
            await connection.execute(sqlalchemy.text("INSERT INTO users VALUES (1, 'ada'), (2, 'grace'), (3, 'linus')"))
        session = AsyncSession(engine)

        async def load_names(ids: list[int]) -> list[str]:
            queries.append((list(ids), session_closed))
            statement = sqlalchemy.text("SELECT id, name FROM users WHERE id IN :ids").bindparams(
                sqlalchemy.bindparam("ids", expanding=True)
            )
            rows = dict((await session.execute(statement, {"ids": ids})).all())
            return [rows[id_] for id_ in ids]

        loader = shim(load_fn=load_names)
        elsewhere = loader.load(1)  # a caller outside the group shares key 1

        async def load(key: int) -> str:
            result: str = await loader.load(key)
            return result

        async def fail() -> None:
            raise ValueError("sibling failed")

        async def resolve_in_a_group() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(load(1))
                group.create_task(load(2))
                group.create_task(fail())

        with pytest.raises(ExceptionGroup) as raised:
            await resolve_in_a_group()
        assert raised.group_contains(ValueError, match="sibling failed")
        assert await elsewhere == "ada"  # the group's cancellation did not reach it
        await session.close()
        session_closed = True
        # Batches start in request order across loaders: once a later loader answered, any
        # batch this loader still had would have run.
        probe = shim(load_fn=echo)
        assert await probe.load("probe") == "probe"
    finally:
        await engine.dispose()
    # One query, before the session closed; key 2 was wanted only inside the group: never queried.
    assert queries == [([1], False)]


async def echo(keys: list[Any]) -> list[Any]:
    return keys
