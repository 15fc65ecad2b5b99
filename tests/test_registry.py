"""LoaderRegistry with each DataLoader twin: loaders per function and arguments, options, errors, shutdown.

The tests of core options that the registry only passes through (cache_errors,
max_concurrent_batches, stats) skip while the core does not accept them yet.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import OrderedDict
from typing import Any

import pytest

from dloader import LoaderRegistry


def dloader_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("dloader:")]


class Posts:
    """``load(authors, *, status)``: a one-to-many batch function that logs its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], list[int]]] = []

    async def __call__(self, author_ids: list[int], **kwargs: Any) -> list[str]:
        self.calls.append((kwargs, list(author_ids)))
        await asyncio.sleep(0)
        return [f"{kwargs.get('status', '-')}:{author_id}" for author_id in author_ids]


# ---------------------------------------------------------------- loaders per function and arguments


async def test_one_loader_per_function_and_argument_set(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls)
    drafts = loaders.get(posts, status="draft")
    published = loaders.get(posts, status="published")
    assert isinstance(drafts, loader_cls) and isinstance(published, loader_cls)
    assert drafts is not published
    assert loaders.get(posts, status="draft") is drafts
    assert loaders.get(posts) is not drafts
    values = await asyncio.gather(drafts.load(1), published.load(1), drafts.load(2), loaders.get(posts).load(3))
    assert values == ["draft:1", "published:1", "draft:2", "-:3"]
    # One call per argument set, each with its own keys and its own keyword arguments.
    assert sorted(posts.calls, key=repr) == sorted(
        [({"status": "draft"}, [1, 2]), ({"status": "published"}, [1]), ({}, [3])], key=repr
    )
    assert len(loaders) == 3
    await loaders.shutdown()


async def test_argument_order_does_not_matter_but_type_does(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls)
    assert loaders.get(posts, status="x", limit=2) is loaders.get(posts, limit=2, status="x")
    # 1 == True == 1.0, yet a load function may treat them differently.
    assert loaders.get(posts, flag=1) is not loaders.get(posts, flag=True)
    assert loaders.get(posts, flag=(1, 2)) is loaders.get(posts, flag=(1, 2))


async def test_names_say_function_and_arguments(loader_cls: type) -> None:
    async def posts_by_author(keys: list[int], *, status: str, limit: int = 10) -> list[int]:
        return keys

    loaders = LoaderRegistry(loader_cls=loader_cls)
    assert loaders.get(posts_by_author, status="draft").name.endswith("posts_by_author(status='draft')")
    assert loaders.get(posts_by_author, status="draft", limit=5).name.endswith(
        "posts_by_author(limit=5, status='draft')"
    )
    named = LoaderRegistry(loader_cls=loader_cls, options={posts_by_author: {"name": "posts"}})
    assert named.get(posts_by_author, status="draft").name == "posts(status='draft')"
    assert "posts(status='draft')" in repr(named.get(posts_by_author, status="draft"))
    assert repr(named) == "<LoaderRegistry loaders=1: posts(status='draft')>"
    assert repr(LoaderRegistry()) == "<LoaderRegistry loaders=0>"


async def test_bound_methods_share_a_loader(loader_cls: type) -> None:
    class Repository:
        async def load_users(self, ids: list[int]) -> list[str]:
            return [f"user {i}" for i in ids]

    repository = Repository()
    loaders = LoaderRegistry(loader_cls=loader_cls)
    # Each attribute access makes a new bound method object; they compare equal.
    assert loaders.get(repository.load_users) is loaders.get(repository.load_users)
    assert await loaders.get(repository.load_users).load(4) == "user 4"


# ---------------------------------------------------------------- options


async def test_registry_defaults_and_per_function_options(loader_cls: type) -> None:
    posts = Posts()
    other = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls, max_batch_size=2, options={posts: {"max_batch_size": 3}})
    loaders.configure(other, cache=False)
    assert loaders.get(posts).max_batch_size == 3
    assert loaders.get(posts, status="x").max_batch_size == 3  # every argument set of the function
    assert loaders.get(other).max_batch_size == 2 and loaders.get(other).cache is False
    await loaders.get(posts).load_many(range(7))
    assert [keys for _, keys in posts.calls] == [[0, 1, 2], [3, 4, 5], [6]]
    await loaders.get(other).load_many(range(3))
    await loaders.get(other).load(0)  # cache=False: loaded again
    assert [keys for _, keys in other.calls] == [[0, 1], [2], [0]]


async def test_configure_merges_and_refuses_after_first_use(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls)
    loaders.configure(posts, max_batch_size=4)
    loaders.configure(posts, cache=False)
    loader = loaders.get(posts, status="a")
    assert (loader.max_batch_size, loader.cache) == (4, False)
    with pytest.raises(RuntimeError, match=r"configure\(.*after its loaders were created .*status='a'"):
        loaders.configure(posts, max_batch_size=1)


async def test_cache_map_is_a_factory_one_map_per_loader(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls, cache_map=OrderedDict)
    drafts, published = loaders.get(posts, status="draft"), loaders.get(posts, status="published")
    assert type(drafts.cache_map) is OrderedDict and drafts.cache_map is not published.cache_map
    await asyncio.gather(drafts.load(1), published.load(1))
    assert dict(drafts.cache_map) == {1: "draft:1"} and dict(published.cache_map) == {1: "published:1"}
    with pytest.raises(TypeError, match=r"cache_map must be a factory .* not a dict instance"):
        LoaderRegistry(cache_map={})
    with pytest.raises(TypeError, match="cache_map must be a factory"):
        LoaderRegistry(options={posts: {"cache_map": OrderedDict()}})


async def test_loader_options_are_checked_by_the_constructor(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls, max_batch_size=0)
    with pytest.raises(ValueError, match=r"'.*Posts.*': max_batch_size must be an int >= 1"):
        loaders.get(posts)
    assert len(loaders) == 0  # nothing half-made is kept
    with pytest.raises(TypeError):
        LoaderRegistry(loader_cls=loader_cls, no_such_option=True).get(posts)


def test_bad_registry_arguments_fail_clearly() -> None:
    posts = Posts()
    with pytest.raises(TypeError, match="'name' cannot be a default for every loader"):
        LoaderRegistry(name="x")
    with pytest.raises(TypeError, match="'value_cache' cannot be a default for every loader"):
        LoaderRegistry(value_cache=object())
    with pytest.raises(TypeError, match="'load_fn' is not an option"):
        LoaderRegistry(load_fn=posts)
    with pytest.raises(TypeError, match="loader_cls must be a DataLoader class"):
        LoaderRegistry(loader_cls=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="options must be a mapping"):
        LoaderRegistry(options=[posts])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"options\[.*Posts.*\] must be a mapping"):
        LoaderRegistry(options={posts: 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="configure: load_fn must be callable"):
        LoaderRegistry().configure(3)  # type: ignore[arg-type]


def test_bad_get_arguments_fail_clearly() -> None:
    posts = Posts()
    loaders = LoaderRegistry()
    with pytest.raises(TypeError, match=r"get\(.*, tags=\.\.\.\): keyword argument 'tags' is unhashable \(list\)"):
        loaders.get(posts, tags=["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="load_fn must be an async callable"):
        loaders.get(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="load_fn must be hashable"):
        loaders.get([posts])  # type: ignore[arg-type]
    assert len(loaders) == 0


async def test_a_value_cache_instance_is_refused_for_keyword_loaders(loader_cls: type) -> None:
    class SharedCache:
        timeout = None

        async def get_many(self, keys: list[Any]) -> list[Any]:
            raise AssertionError("never consulted")

    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls, options={posts: {"value_cache": SharedCache()}})
    with pytest.raises(ValueError, match=r"Posts object.*\(status='draft'\).*would share its entries"):
        loaders.get(posts, status="draft")


async def test_a_value_cache_factory_gets_the_keyword_arguments(loader_cls: type) -> None:
    class NamespacedCache:
        timeout = None

        def __init__(self, namespace: str) -> None:
            self.namespace = namespace

        async def get_many(self, keys: list[Any]) -> list[Any]:
            raise AssertionError("not consulted in this test")

        async def set_many(self, items: list[tuple[Any, Any]]) -> None:
            pass

        async def delete_many(self, keys: list[Any]) -> None:
            pass

        async def clear(self) -> None:
            pass

    created: list[NamespacedCache] = []

    def cache_for(kwargs: dict[str, Any]) -> NamespacedCache:
        created.append(NamespacedCache(f"posts:{kwargs.get('status')}"))
        return created[-1]

    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls, options={posts: {"value_cache": cache_for}})
    loaders.get(posts, status="draft")
    loaders.get(posts)
    loaders.get(posts, status="draft")  # the same loader: no new cache
    assert [cache.namespace for cache in created] == ["posts:draft", "posts:None"]


# ---------------------------------------------------------------- shutdown and lifecycle


async def test_shutdown_cancels_everything_of_every_loader(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    users, posts = make_recorder(gated=True), make_recorder(gated=True)
    loaders = LoaderRegistry(loader_cls=loader_cls)
    running = loaders.get(users).load(1)
    await spin(lambda: users.calls == 1)  # in flight
    queued = loaders.get(posts).load(2)  # queued, not dispatched yet
    assert await loaders.shutdown() is None
    assert running.cancelled() and queued.cancelled()
    assert users.cancelled == [0]
    assert dloader_tasks() == []
    assert await loaders.shutdown() is None  # idempotent


async def test_shutdown_returns_the_loaders_errors(loader_cls: type) -> None:
    started = asyncio.Event()

    async def stubborn(keys: list[int]) -> list[int]:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("could not roll back") from None
        return keys

    async def fine(keys: list[int]) -> list[int]:
        return keys

    loaders = LoaderRegistry(loader_cls=loader_cls)
    failing = loaders.get(stubborn).load(1)
    assert await loaders.get(fine).load(2) == 2
    await started.wait()
    errors = await loaders.shutdown()
    assert isinstance(errors, ExceptionGroup)
    assert "1 of 2 loaders" in str(errors)
    (group,) = errors.exceptions
    assert isinstance(group, ExceptionGroup)
    assert [str(error) for error in group.exceptions] == ["could not roll back"]
    assert failing.cancelled()  # shutdown() cancels the waiters; the error is reported, not delivered
    assert dloader_tasks() == []


async def test_async_with_shuts_down_and_the_registry_stays_usable(
    loader_cls: type, make_recorder: Any, spin: Any
) -> None:
    recorder = make_recorder(gated=True)
    async with LoaderRegistry(loader_cls=loader_cls) as loaders:
        pending = loaders.get(recorder).load("a")
        await spin(lambda: recorder.calls == 1)
        with pytest.raises(RuntimeError, match="already entered"):
            async with loaders:
                pass
    assert pending.cancelled()
    assert dloader_tasks() == []
    # After shutdown, like its loaders: usable again, and enterable again.
    async with loaders:
        again = loaders.get(recorder).load("b")
        await spin(lambda: recorder.calls == 2)
        recorder.release_all()
        assert await again == "value-of-'b'"
    assert list(loaders) == [loaders.get(recorder)]


async def test_shutdown_finishes_when_the_caller_is_cancelled(loader_cls: type, spin: Any) -> None:
    stop = asyncio.Event()
    started: list[str] = []
    cancelled: list[str] = []

    async def slow_to_stop(keys: list[str]) -> list[str]:
        started.append(keys[0])
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(keys[0])
            await stop.wait()  # cleanup that takes a while
            raise
        return keys

    async def other(keys: list[str]) -> list[str]:
        started.append(keys[0])
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(keys[0])
            raise
        return keys

    loaders = LoaderRegistry(loader_cls=loader_cls)
    first = loaders.get(slow_to_stop).load("first")
    second = loaders.get(other).load("second")
    await spin(lambda: len(started) == 2)
    closing = asyncio.create_task(loaders.shutdown())
    await spin(lambda: cancelled == ["first"])
    closing.cancel()  # the request is cancelled while its registry shuts down
    await spin(lambda: cancelled == ["first", "second"])
    stop.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert cancelled == ["first", "second"]  # the other loader was still shut down
    assert first.cancelled() and second.cancelled()
    assert dloader_tasks() == []


async def test_registries_are_freed(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls)
    await loaders.get(posts, status="x").load(1)
    await loaders.shutdown()
    reference = weakref.ref(loaders)
    loader_reference = weakref.ref(loaders.get(posts, status="x"))
    del loaders
    gc.collect()
    assert reference() is None and loader_reference() is None


# ---------------------------------------------------------------- options of the new core, through the registry


async def test_stats_are_combined(loader_cls: type) -> None:
    posts = Posts()
    loaders = LoaderRegistry(loader_cls=loader_cls, stats=True)
    drafts, published = loaders.get(posts, status="draft"), loaders.get(posts, status="published")
    await asyncio.gather(drafts.load(1), drafts.load(2), published.load(1))
    await drafts.load(1)  # a cache hit
    combined = loaders.stats()
    assert combined is not None
    expected = (drafts.stats + published.stats).as_dict()  # type: ignore[attr-defined]
    assert combined.as_dict() == expected
    assert loaders.stats(posts) is not None and loaders.stats(posts).as_dict() == expected  # type: ignore[union-attr]
    assert loaders.stats(Posts()) is None  # a function without loaders
    assert LoaderRegistry(loader_cls=loader_cls).stats() is None
    await loaders.shutdown()


async def test_cache_errors_three_forms_through_the_registry(loader_cls: type) -> None:

    class NotFound(Exception):
        pass

    calls: list[list[int]] = []

    async def load(keys: list[int]) -> list[Any]:
        calls.append(list(keys))
        return [NotFound(key) if key < 0 else (ConnectionError(key) if key == 0 else key) for key in keys]

    def only_not_found(key: Any, error: BaseException) -> bool:
        return isinstance(error, NotFound)

    for cache_errors, cached in ((False, set()), (True, {-1, 0}), (only_not_found, {-1})):
        calls.clear()
        async with LoaderRegistry(loader_cls=loader_cls, cache_errors=cache_errors) as loaders:
            loader = loaders.get(load)
            first = await loader.load_many([-1, 0, 1], return_exceptions=True)
            second = await loader.load_many([-1, 0, 1], return_exceptions=True)
            assert [type(value) for value in first] == [NotFound, ConnectionError, int]
            assert [type(value) for value in second] == [NotFound, ConnectionError, int]
            reloaded = [key for key in (-1, 0) if key not in cached]
            expected = [[-1, 0, 1], reloaded] if reloaded else [[-1, 0, 1]]
            assert calls == expected, (cache_errors, calls)


async def test_cache_errors_missing_mapping_key_and_whole_batch_failures(loader_cls: type) -> None:
    calls: list[list[int]] = []
    fail_whole_batch = True

    async def load(keys: list[int]) -> dict[int, int]:
        calls.append(list(keys))
        if fail_whole_batch:
            raise ConnectionError("database down")
        return {key: key for key in keys if key != 404}

    loader = loader_cls(load, cache_errors=True)
    with pytest.raises(ConnectionError):
        await loader.load(1)
    fail_whole_batch = False
    assert await loader.load(1) == 1  # a whole-batch failure is never cached
    with pytest.raises(KeyError):
        await loader.load(404)
    with pytest.raises(KeyError):
        await loader.load(404)  # a missing mapping key is a cached failure
    assert calls == [[1], [1], [404]]
    loader.clear(404)
    with pytest.raises(KeyError):
        await loader.load(404)
    assert calls[-1] == [404]
    await loader.shutdown()


# ---------------------------------------------------------------- a real AsyncSession (SQLAlchemy 2, aiosqlite)


@pytest.fixture
async def user_database(tmp_path: Any) -> Any:
    """A file database with 100 users, and a session factory whose sessions each open a new connection."""
    pytest.importorskip("aiosqlite")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.pool import NullPool

    # NullPool: a session provisions its connection on its first statement, as with a server
    # database whose pool is empty, which is when a shared session is most fragile.
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}", poolclass=NullPool)
    metadata = sqlalchemy.MetaData()
    users = sqlalchemy.Table(
        "users",
        metadata,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("name", sqlalchemy.String, nullable=False),
    )
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(users.insert(), [{"id": i, "name": f"user {i}"} for i in range(1, 101)])
    yield async_sessionmaker(engine), users
    await engine.dispose()


def session_loader(session: Any, users: Any, statements: list[list[int]]) -> Any:
    from sqlalchemy import select

    async def load_users(ids: list[int]) -> dict[int, str]:
        statements.append(list(ids))
        rows = (await session.execute(select(users.c.id, users.c.name).where(users.c.id.in_(ids)))).all()
        return {row.id: row.name for row in rows}

    return load_users


async def test_split_batches_on_one_async_session_fail_without_a_cap(loader_cls: type, user_database: Any) -> None:
    """Why max_concurrent_batches exists: the same load as below, uncapped, breaks the session."""
    sessions, users = user_database
    statements: list[list[int]] = []
    async with sessions() as session, LoaderRegistry(loader_cls=loader_cls, max_batch_size=10) as loaders:
        loader = loaders.get(session_loader(session, users, statements))
        results = await loader.load_many(range(1, 96), return_exceptions=True)
    failures = [result for result in results if isinstance(result, Exception)]
    assert failures and all("concurrent operations are not permitted" in str(error) for error in failures)


async def test_max_concurrent_batches_one_makes_a_shared_async_session_safe(
    loader_cls: type, user_database: Any
) -> None:
    sessions, users = user_database
    statements: list[list[int]] = []
    capped = LoaderRegistry(loader_cls=loader_cls, max_batch_size=10, max_concurrent_batches=1)
    async with sessions() as session, capped as loaders:
        loader = loaders.get(session_loader(session, users, statements))
        first = loader.load_many(range(1, 96))
        second = loader.load_many(range(90, 101))  # 90-95 join the first call, 96-100 extend the batch
        names, more = await asyncio.gather(first, second)
    assert names == [f"user {i}" for i in range(1, 96)]
    assert more == [f"user {i}" for i in range(90, 101)]
    assert sorted(key for batch in statements for key in batch) == list(range(1, 101))
    assert all(len(batch) <= 10 for batch in statements)
    assert [batch[0] for batch in statements[:10]] == list(range(1, 96, 10))  # in order
