"""graphql-core + dloader: a LoaderRegistry per request, passed in ``context_value``.

``handle_request()`` is what a web handler would call for each incoming query:

    async with LoaderRegistry() as loaders:
        result = await graphql.graphql(schema, query, context_value=RequestContext(loaders))

The registry gives each request fresh loaders (no cached value leaks between requests
or users) and shuts them all down when the request ends. Resolvers ask it for the loader
of a batch function: ``info.context.loaders.get(load_users).load(user_id)``.

Resolvers can be written in any of the usual styles and still share batches:

* a sync resolver that returns ``loader.load(key)`` (graphql-core awaits the future),
* an async resolver that awaits ``loader.load(key)``,
* an async resolver that first awaits something else, such as a permission check,
* a one-to-many loader (``posts_by_author``) and ``load_many`` (``User.followers``).

dloader waits while keys keep arriving before it calls the batch function, so each
loader makes one call per dependency level of the query.

Run: ``python examples/graphql_core_app.py`` (needs ``graphql-core``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import graphql

from dloader import LoaderRegistry

# ---------------------------------------------------------------- a stand-in database

USERS = {i: {"id": i, "name": f"user{i}", "followers": [(i * 3 + k) % 40 + 1 for k in (1, 2)]} for i in range(1, 41)}
POSTS = [{"id": p, "author_id": p % 12 + 1, "title": f"post {p}"} for p in range(1, 31)]  # by users 1-12

SDL = """
type Query { posts: [Post!]! }
type Post { id: Int! title: String! author: User! }
type User { id: Int! name: String! posts: [Post!]! followers: [User!]! }
"""


class RequestContext:
    """Per-request state: the loaders, and a log of what they asked the database."""

    def __init__(self, loaders: LoaderRegistry, viewer_id: int | None = None) -> None:
        self.loaders = loaders
        self.viewer_id = viewer_id
        self.batches = BatchLog()

    async def can_see_followers(self, user_id: int) -> bool:
        # A permission check that awaits (a session, a policy service...) for some users only.
        if user_id % 2:
            await asyncio.sleep(0)
        return True


# Batch functions get a per-request resource as a keyword argument -- here the request's log,
# in an application its database session: loaders.get(load_users, log=...). The registry passes
# keyword arguments on to the batch function and keeps one loader per distinct set of them.


async def load_users(ids: list[int], *, log: BatchLog) -> list[dict[str, Any] | Exception]:
    log.append(("users", ids))
    await asyncio.sleep(0.001)  # the round trip
    return [USERS[id_] if id_ in USERS else KeyError(id_) for id_ in ids]


async def load_posts_by_author(author_ids: list[int], *, log: BatchLog) -> list[list[dict[str, Any]]]:
    log.append(("posts_by_author", author_ids))
    await asyncio.sleep(0.001)
    return [[post for post in POSTS if post["author_id"] == id_] for id_ in author_ids]


class BatchLog(list[tuple[str, list[int]]]):
    """A list that hashes by identity, so it can be a loader's keyword argument."""

    __hash__ = object.__hash__  # type: ignore[assignment]


def resolve_posts(_root: None, _info: graphql.GraphQLResolveInfo) -> list[dict[str, Any]]:
    return POSTS[:20]


def resolve_post_author(post: dict[str, Any], info: graphql.GraphQLResolveInfo) -> Any:
    return users(info).load(post["author_id"])  # sync resolver returning the future


async def resolve_user_posts(user: dict[str, Any], info: graphql.GraphQLResolveInfo) -> list[dict[str, Any]]:
    context = info.context
    return await context.loaders.get(load_posts_by_author, log=context.batches).load(user["id"])


async def resolve_user_followers(user: dict[str, Any], info: graphql.GraphQLResolveInfo) -> list[dict[str, Any]]:
    if not await info.context.can_see_followers(user["id"]):
        return []
    return await users(info).load_many(user["followers"])  # one future for the whole list


def users(info: graphql.GraphQLResolveInfo) -> Any:
    return info.context.loaders.get(load_users, log=info.context.batches)


def build_schema() -> graphql.GraphQLSchema:
    schema = graphql.build_schema(SDL)
    for type_name, field_name, resolve in (
        ("Query", "posts", resolve_posts),
        ("Post", "author", resolve_post_author),
        ("User", "posts", resolve_user_posts),
        ("User", "followers", resolve_user_followers),
    ):
        object_type = schema.type_map[type_name]
        assert isinstance(object_type, graphql.GraphQLObjectType)
        object_type.fields[field_name].resolve = resolve
    return schema


SCHEMA = build_schema()

QUERY = "{ posts { title author { name posts { id } followers { name posts { id } } } } }"


async def handle_request(
    query: str, variables: dict[str, Any] | None = None
) -> tuple[graphql.ExecutionResult, RequestContext]:
    """One request: a fresh registry in a fresh context, then execute; shut down on the way out."""
    async with LoaderRegistry() as loaders:
        context = RequestContext(loaders)
        result = await graphql.graphql(SCHEMA, query, variable_values=variables, context_value=context)
    return result, context


async def serve_concurrently(n: int = 3) -> list[tuple[graphql.ExecutionResult, RequestContext]]:
    return await asyncio.gather(*(handle_request(QUERY) for _ in range(n)))


def main() -> None:
    for index, (result, context) in enumerate(asyncio.run(serve_concurrently())):
        assert result.errors is None, result.errors
        assert result.data is not None
        print(f"request {index}: {len(result.data['posts'])} posts, {len(context.batches)} batched loads")
        for loader, keys in context.batches:
            print(f"  {loader}: {len(keys)} keys")


if __name__ == "__main__":
    main()
