"""The integrations serving real HTTP requests: strawberry's ASGI app and FastAPI, over SQLite (aiosqlite).

Requests go through ``httpx.ASGITransport`` and, once, through uvicorn on 127.0.0.1; a
statement log tagged with each request's id shows one SQL statement per loader (and
argument set) per level, and no request served from another's cache.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import socket
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest

pytest.importorskip("strawberry")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("aiosqlite")

import aiosqlite
import httpx
import strawberry
from fastapi import Depends, FastAPI
from strawberry.asgi import GraphQL
from strawberry.fastapi import GraphQLRouter

from dloader import LoaderRegistry
from dloader.integrations.fastapi import CLIENT_CLOSED_REQUEST, loader_registry_dependency
from dloader.integrations.strawberry import LoaderExtension

CONCURRENT_REQUESTS = 20

#: The id of the request being served (from its x-request header), for the statement log.
current_request: contextvars.ContextVar[str] = contextvars.ContextVar("current_request", default="-")


class Backend:
    """The database and everything the tests observe, for the apps' resolvers and load functions."""

    def __init__(self, connection: aiosqlite.Connection, loader_cls: type) -> None:
        self.connection = connection
        self.loader_cls = loader_cls
        self.statements: list[tuple[str, str, list[Any]]] = []  # (request, label, parameters)
        self.registries: list[weakref.ref[TrackedRegistry]] = []
        self.shut_down = 0

    async def query(self, label: str, sql: str, parameters: list[Any]) -> list[Any]:
        self.statements.append((current_request.get(), label, parameters))
        async with self.connection.execute(sql, parameters) as cursor:
            return list(await cursor.fetchall())

    def per_request(self) -> dict[str, Counter[str]]:
        counts: dict[str, Counter[str]] = {}
        for request, label, _ in self.statements:
            counts.setdefault(request, Counter())[label] += 1
        return counts


BACKEND: Backend | None = None


def backend() -> Backend:
    assert BACKEND is not None, "the backend fixture is not active"
    return BACKEND


class TrackedRegistry(LoaderRegistry):
    """A LoaderRegistry that tells the backend it was created and shut down."""

    def __init__(self) -> None:
        super().__init__(loader_cls=backend().loader_cls)
        self.was_shut_down = False
        backend().registries.append(weakref.ref(self))

    async def shutdown(self) -> ExceptionGroup[Exception] | None:
        if not self.was_shut_down:
            self.was_shut_down = True
            backend().shut_down += 1
        return await super().shutdown()


@pytest.fixture
async def database(loader_cls: type) -> AsyncIterator[Backend]:
    global BACKEND
    async with aiosqlite.connect(":memory:") as connection:
        await connection.executescript(
            """
            CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, status TEXT NOT NULL,
                                title TEXT NOT NULL);
            """
        )
        await connection.executemany("INSERT INTO authors VALUES (?, ?)", [(i, f"author {i}") for i in range(1, 9)])
        await connection.executemany(
            "INSERT INTO posts VALUES (?, ?, ?, ?)",
            [(i, i % 8 + 1, "draft" if i % 3 == 0 else "published", f"post {i}") for i in range(1, 41)],
        )
        await connection.commit()
        BACKEND = Backend(connection, loader_cls)
        try:
            yield BACKEND
        finally:
            BACKEND = None


# ---------------------------------------------------------------- load functions and schema


def placeholders(keys: list[Any]) -> str:
    return ", ".join("?" * len(keys))


async def load_authors(ids: list[int]) -> dict[int, Author]:
    rows = await backend().query("authors", f"SELECT id, name FROM authors WHERE id IN ({placeholders(ids)})", ids)
    return {id_: Author(id=id_, name=name) for id_, name in rows}


async def load_posts_by_author(author_ids: list[int], *, status: str) -> list[list[Post]]:
    rows = await backend().query(
        f"posts(status={status!r})",
        f"SELECT id, author_id, title FROM posts WHERE status = ? AND author_id IN ({placeholders(author_ids)}) "
        "ORDER BY id",
        [status, *author_ids],
    )
    by_author: dict[int, list[Post]] = {id_: [] for id_ in author_ids}
    for id_, author_id, title in rows:
        by_author[author_id].append(Post(id=id_, title=title, author_id=author_id))
    return [by_author[id_] for id_ in author_ids]


def loaders_of(info: strawberry.Info) -> LoaderRegistry:
    context = info.context
    registry = context["loaders"] if isinstance(context, dict) else context.loaders
    assert isinstance(registry, TrackedRegistry)
    return registry


@strawberry.type
class Author:
    id: int
    name: str

    @strawberry.field
    async def posts(self, info: strawberry.Info, status: str) -> list[Post]:
        return await loaders_of(info).get(load_posts_by_author, status=status).load(self.id)


@strawberry.type
class Post:
    id: int
    title: str
    author_id: strawberry.Private[int]

    @strawberry.field
    async def author(self, info: strawberry.Info) -> Author:
        return await loaders_of(info).get(load_authors).load(self.author_id)


class Stuck:
    """A load function that never returns and records its cancellation (for the disconnect tests)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, keys: list[int]) -> list[int]:
        self.started.set()
        try:
            await asyncio.Event().wait()  # a statement that never returns
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return keys


STUCK: Stuck | None = None


@strawberry.type
class Query:
    @strawberry.field
    async def stuck(self, info: strawberry.Info) -> int:
        assert STUCK is not None
        return await loaders_of(info).get(STUCK).load(1)

    @strawberry.field
    async def posts(self, first: int) -> list[Post]:
        rows = await backend().query("root", "SELECT id, author_id, title FROM posts ORDER BY id LIMIT ?", [first])
        return [Post(id=id_, title=title, author_id=author_id) for id_, author_id, title in rows]


schema = strawberry.Schema(query=Query, extensions=[lambda: LoaderExtension(TrackedRegistry)])

# Level 0: the posts; 1: their authors; 2: each author's published and draft posts (two
# argument sets of one function); 3: the drafts' authors, all cached at level 1.
QUERY = """{ posts(first: 12) { title author { name
    published: posts(status: "published") { title }
    drafts: posts(status: "draft") { title author { name } } } } }"""
PER_REQUEST = Counter({"root": 1, "authors": 1, "posts(status='published')": 1, "posts(status='draft')": 1})


def tag_requests(app: Any) -> Callable[..., Awaitable[None]]:
    """ASGI middleware: the request's x-request header becomes ``current_request`` while it is served."""

    async def tagged(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = dict(scope["headers"]).get(b"x-request", b"-").decode()
        token = current_request.set(request_id)
        try:
            await app(scope, receive, send)
        finally:
            current_request.reset(token)

    return tagged


def strawberry_asgi_app() -> Any:
    return tag_requests(GraphQL(schema))


get_loaders = loader_registry_dependency(TrackedRegistry)
Loaders = Annotated[LoaderRegistry, Depends(get_loaders, scope="function")]


async def graphql_context(loaders: Annotated[LoaderRegistry, Depends(get_loaders)]) -> dict[str, Any]:
    return {"loaders": loaders}


def fastapi_app(extra_routes: Callable[[FastAPI], None] | None = None) -> Any:
    app = FastAPI()
    app.include_router(GraphQLRouter(schema, context_getter=graphql_context), prefix="/graphql")

    @app.get("/authors/{author_id}/titles")
    async def titles(author_id: int, status: str, loaders: Loaders) -> list[str]:
        posts = await loaders.get(load_posts_by_author, status=status).load(author_id)
        return [post.title for post in posts]

    if extra_routes is not None:
        extra_routes(app)
    return tag_requests(app)


# ---------------------------------------------------------------- checks


async def post_queries(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    async def one(index: int) -> dict[str, Any]:
        response = await client.post(path, json={"query": QUERY}, headers={"x-request": f"request-{index}"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    return await asyncio.gather(*(one(index) for index in range(CONCURRENT_REQUESTS)))


def check_served(database: Backend, results: list[dict[str, Any]]) -> None:
    assert all("errors" not in result for result in results), results[0]
    assert all(result == results[0] for result in results)
    posts = results[0]["data"]["posts"]
    assert len(posts) == 12 and posts[0]["title"] == "post 1" and posts[0]["author"]["name"] == "author 2"
    assert all(post["title"] != "post 3" for post in posts[0]["author"]["published"])  # post 3 is a draft
    # Each request made exactly its own statements: one per loader and argument set per level.
    per_request = database.per_request()
    assert set(per_request) == {f"request-{index}" for index in range(CONCURRENT_REQUESTS)}
    assert all(counts == PER_REQUEST for counts in per_request.values()), per_request
    # Each request's authors statement asked for all its authors: no request was served from another's cache.
    author_batches = [parameters for _, label, parameters in database.statements if label == "authors"]
    assert len(author_batches) == CONCURRENT_REQUESTS
    assert all(sorted(batch) == list(range(1, 9)) for batch in author_batches)


def check_registries_gone(database: Backend, expected: int) -> None:
    assert len(database.registries) == expected
    assert database.shut_down == expected
    gc.collect()
    assert [reference for reference in database.registries if reference() is not None] == []
    assert [task for task in asyncio.all_tasks() if task.get_name().startswith("dloader:")] == []


# ---------------------------------------------------------------- through httpx.ASGITransport


async def test_strawberry_asgi_app_gives_each_operation_its_registry(database: Backend) -> None:
    transport = httpx.ASGITransport(app=strawberry_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://strawberry.test") as client:
        results = await post_queries(client, "/graphql")
    check_served(database, results)
    check_registries_gone(database, CONCURRENT_REQUESTS)


async def test_fastapi_graphql_router_with_the_dependency(database: Backend) -> None:
    transport = httpx.ASGITransport(app=fastapi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://fastapi.test") as client:
        results = await post_queries(client, "/graphql")
    check_served(database, results)
    # The dependency made the registry; LoaderExtension found it in the context and used it.
    check_registries_gone(database, CONCURRENT_REQUESTS)


async def test_fastapi_endpoints_batch_per_argument_set(database: Backend) -> None:
    transport = httpx.ASGITransport(app=fastapi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://fastapi.test") as client:
        responses = await asyncio.gather(
            *(
                client.get(f"/authors/{author}/titles", params={"status": status}, headers={"x-request": "r"})
                for author in (1, 2)
                for status in ("draft", "published")
            )
        )
    assert [response.status_code for response in responses] == [200] * 4
    assert responses[0].json() == ["post 24"]  # author 1's draft
    assert "post 24" not in responses[1].json() and "post 8" in responses[1].json()
    # One registry per request, each loading its one key.
    assert Counter(label for _, label, _ in database.statements) == {
        "posts(status='draft')": 2,
        "posts(status='published')": 2,
    }
    check_registries_gone(database, 4)


async def test_strawberry_extension_with_object_and_missing_contexts(database: Backend) -> None:
    class Context:
        loaders: LoaderRegistry | None = None

    context = Context()
    result = await schema.execute("{ posts(first: 2) { author { name } } }", context_value=context)
    assert result.errors is None
    assert result.data == {"posts": [{"author": {"name": "author 2"}}, {"author": {"name": "author 3"}}]}
    assert context.loaders is None  # the extension's registry was taken out again
    result = await schema.execute("{ posts(first: 1) { author { name } } }")  # no context: a dict is made
    assert result.errors is None
    check_registries_gone(database, 2)


async def test_strawberry_extension_refuses_a_context_it_cannot_extend(database: Backend) -> None:
    class Frozen:
        __slots__ = ()

    result = await schema.execute("{ posts(first: 1) { title } }", context_value=Frozen())
    assert result.errors is not None
    assert "cannot set 'loaders' on the context (Frozen" in result.errors[0].message
    result = await schema.execute("{ posts(first: 1) { title } }", context_value={"loaders": "mine"})
    assert result.errors is not None
    assert "the context already holds 'loaders' = str object, not a LoaderRegistry" in result.errors[0].message
    with pytest.raises(TypeError, match="registry_factory must be callable"):
        LoaderExtension(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="attribute must be an identifier"):
        LoaderExtension(attribute="not an identifier")
    gc.collect()
    assert [reference for reference in database.registries if reference() is not None] == []


UnwatchedLoaders = Annotated[
    LoaderRegistry, Depends(loader_registry_dependency(TrackedRegistry, cancel_on_disconnect=False), scope="function")
]


async def test_fastapi_dependency_without_disconnect_watching(database: Backend) -> None:
    app = FastAPI()

    @app.post("/titles")
    async def titles(body: dict[str, int], loaders: UnwatchedLoaders) -> list[str]:
        posts = await loaders.get(load_posts_by_author, status="published").load(body["author"])
        return [post.title for post in posts]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fastapi.test") as client:
        response = await client.post("/titles", json={"author": 3})
    assert response.status_code == 200 and response.json() == ["post 2", "post 10", "post 26", "post 34"]
    check_registries_gone(database, 1)
    with pytest.raises(TypeError, match="registry_factory must be callable"):
        loader_registry_dependency(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- through uvicorn on loopback


@asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[tuple[Any, int]]:
    uvicorn = pytest.importorskip("uvicorn")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # a free port, chosen by the kernel
    listener.listen(64)
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", ws="none", http="h11", timeout_graceful_shutdown=10
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        for _ in range(1000):  # bounded wait for startup, not a timing assertion
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield server, port
    finally:
        server.should_exit = True
        await serving
        listener.close()


@pytest.fixture
def uvicorn_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING, logger="uvicorn")
    caplog.set_level(logging.WARNING, logger="dloader")

    def errors() -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name.startswith(("uvicorn", "dloader")) and record.levelno >= logging.WARNING
        ]

    return errors


async def test_twenty_concurrent_requests_through_uvicorn(
    database: Backend, uvicorn_errors: Callable[[], list[str]]
) -> None:
    server = uvicorn_server(fastapi_app())
    async with server as (_, port), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        results = await post_queries(client, "/graphql")
    check_served(database, results)
    check_registries_gone(database, CONCURRENT_REQUESTS)
    assert uvicorn_errors() == []


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    global STUCK
    STUCK = Stuck()
    try:
        yield STUCK
    finally:
        STUCK = None


def add_stuck_route(app: FastAPI) -> None:
    @app.get("/stuck")
    async def stuck_endpoint(loaders: Loaders) -> int:
        assert STUCK is not None
        return await loaders.get(STUCK).load(1)


STUCK_GRAPHQL_BODY = b'{"query": "{ stuck }"}'
DISCONNECTING_REQUESTS = {
    "endpoint": b"GET /stuck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "graphql-router": b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(STUCK_GRAPHQL_BODY)}\r\n\r\n".encode()
    + STUCK_GRAPHQL_BODY,
}


@pytest.mark.parametrize("path", list(DISCONNECTING_REQUESTS))
async def test_a_client_disconnect_cancels_the_requests_batches(
    database: Backend, stuck: Stuck, uvicorn_errors: Callable[[], list[str]], path: str
) -> None:
    async with uvicorn_server(fastapi_app(add_stuck_route)) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(DISCONNECTING_REQUESTS[path])
        await writer.drain()
        await asyncio.wait_for(stuck.started.wait(), 30)  # hang guards only: no timing is asserted
        writer.close()  # the client leaves in the middle of the request
        await writer.wait_closed()
        await asyncio.wait_for(stuck.cancelled.wait(), 30)
        for _ in range(1000):  # let uvicorn finish the request's task
            if not server.server_state.tasks:
                break
            await asyncio.sleep(0.01)
        assert not server.server_state.tasks
        assert await reader.read() == b""  # no response for a client that left
    check_registries_gone(database, 1)
    assert uvicorn_errors() == []


async def test_operations_sharing_a_context_share_its_registry(database: Backend) -> None:
    context: dict[str, Any] = {}
    first, second = await asyncio.gather(
        schema.execute("{ posts(first: 3) { author { name } } }", context_value=context),
        schema.execute('{ posts(first: 2) { author { posts(status: "draft") { title } } } }', context_value=context),
    )
    assert first.errors is None and second.errors is None
    assert first.data is not None and len(first.data["posts"]) == 3
    assert context == {}  # taken out after the last operation
    # One registry for both (a batched request), shut down once, when the second one ended.
    check_registries_gone(database, 1)


async def test_a_request_that_completes_is_not_cancelled(database: Backend) -> None:
    server = uvicorn_server(fastapi_app())
    async with server as (_, port), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get("/authors/1/titles", params={"status": "draft"})
    assert response.status_code == 200 and response.json() == ["post 24"]
    assert response.status_code != CLIENT_CLOSED_REQUEST
    check_registries_gone(database, 1)
