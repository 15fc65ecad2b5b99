"""The recipes in examples/ work, with each DataLoader twin, and make one round trip per loader per level.

The recipes are not part of the installed package: they are loaded by file path from
the repository's ``examples/`` directory, next to this tests directory.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
import sys
import weakref
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dloader import LoaderRegistry

EXAMPLES = Path(__file__).parent.parent / "examples"


def load_example(name: str, monkeypatch: pytest.MonkeyPatch, loader_cls: type | None = None) -> ModuleType:
    """Import examples/<name>.py under a private module name; optionally make its registries use a twin."""
    path = EXAMPLES / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{path} not found (the examples are not installed with the package)")
    module_name = f"_dloader_example_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # strawberry resolves annotations through sys.modules
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    if loader_cls is not None:
        monkeypatch.setattr(module, "LoaderRegistry", functools.partial(LoaderRegistry, loader_cls=loader_cls))
    return module


def per_loader(batches: list[tuple[str, list[Any]]]) -> Counter[str]:
    return Counter(loader for loader, _ in batches)


# ---------------------------------------------------------------- strawberry


@pytest.fixture
def strawberry_app(loader_cls: type, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("strawberry")
    module = load_example("strawberry_app", monkeypatch, loader_cls)
    monkeypatch.setattr(module, "BATCHES", [])
    return module


async def strawberry_query(app: ModuleType, loader_cls: type, query: str | None = None) -> tuple[Any, Any]:
    context = app.Context(loaders=LoaderRegistry(loader_cls=loader_cls))
    return await app.run_query(app.QUERY if query is None else query, context)


async def test_strawberry_one_batch_per_loader_per_level(strawberry_app: ModuleType, loader_cls: type) -> None:
    result, context = await strawberry_query(strawberry_app, loader_cls)
    assert result.errors is None
    assert len(result.data["books"]) == 6
    # level 1: every book's author; level 2: every author's books.
    assert strawberry_app.BATCHES == [("authors", [1, 2, 3]), ("books_by_author", [1, 2, 3])]
    titles = {book["title"]: [b["title"] for b in book["author"]["books"]] for book in result.data["books"]}
    assert titles["Kindred"] == ["Kindred", "Parable of the Sower"]
    loaders = list(context.loaders)
    assert [type(loader) for loader in loaders] == [loader_cls, loader_cls]
    assert [loader.name for loader in loaders] == ["load_authors", "load_books_by_author"]


async def test_strawberry_registries_are_per_request_and_shut_down(
    strawberry_app: ModuleType, loader_cls: type
) -> None:
    (first, first_context), (second, second_context) = await asyncio.gather(
        strawberry_query(strawberry_app, loader_cls), strawberry_query(strawberry_app, loader_cls)
    )
    assert first.data == second.data
    assert first_context.loaders is not second_context.loaders
    first_authors = first_context.loaders.get(strawberry_app.load_authors)
    assert first_authors is not second_context.loaders.get(strawberry_app.load_authors)
    assert per_loader(strawberry_app.BATCHES) == {"authors": 2, "books_by_author": 2}  # no shared cache
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("dloader:")]


async def test_strawberry_missing_key_from_mapping_is_a_key_error(strawberry_app: ModuleType, loader_cls: type) -> None:
    result, _ = await strawberry_query(
        strawberry_app, loader_cls, "{ a: author(id: 2) { name } b: author(id: 99) { name } }"
    )
    assert result.errors is None
    assert result.data == {"a": {"name": "Iain M. Banks"}, "b": None}
    assert strawberry_app.BATCHES == [("authors", [2, 99])]


# ---------------------------------------------------------------- graphql-core


@pytest.fixture
def graphql_core_app(loader_cls: type, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("graphql")
    return load_example("graphql_core_app", monkeypatch, loader_cls)


async def test_graphql_core_one_batch_per_loader_per_level(graphql_core_app: ModuleType) -> None:
    responses = await graphql_core_app.serve_concurrently(3)
    posts = graphql_core_app.POSTS[:20]
    level_1_users = list(dict.fromkeys(post["author_id"] for post in posts))
    for result, context in responses:
        assert result.errors is None
        assert result.data == responses[0][0].data
        # users: level 1 (post authors) and level 2 (their followers, minus those cached);
        # posts_by_author: level 2 (authors' posts) and level 3 (followers' posts).
        assert [loader for loader, _ in context.batches].count("users") == 2
        assert [loader for loader, _ in context.batches].count("posts_by_author") == 2
        users_batches = [keys for loader, keys in context.batches if loader == "users"]
        assert users_batches[0] == level_1_users
        assert not set(users_batches[1]) & set(level_1_users)  # level 2 asks only for uncached users
    registries = [context.loaders for _, context in responses]
    assert len({id(registry) for registry in registries}) == 3  # a fresh registry per request
    for registry in registries:
        assert [type(loader) for loader in registry] == [graphql_core_app.LoaderRegistry.keywords["loader_cls"]] * 2


# ---------------------------------------------------------------- ariadne


@pytest.fixture
def ariadne_app(loader_cls: type, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("ariadne")
    pytest.importorskip("httpx")
    module = load_example("ariadne_app", monkeypatch)
    monkeypatch.setattr(module, "BATCHES", [])
    registries: list[weakref.ref[LoaderRegistry]] = []

    def tracked_registry() -> LoaderRegistry:
        registry = LoaderRegistry(loader_cls=loader_cls)
        registries.append(weakref.ref(registry))
        return registry

    monkeypatch.setattr(module, "LoaderRegistry", tracked_registry)
    module.registries = registries  # type: ignore[attr-defined]
    return module


async def test_ariadne_twenty_concurrent_requests_each_with_its_registry(
    ariadne_app: ModuleType, loader_cls: type
) -> None:
    results = await ariadne_app.post_queries(20)
    assert all(result == results[0] and "errors" not in result for result in results)
    assert results[0]["data"]["books"][0] == {
        "title": "A Wizard of Earthsea",
        "author": {
            "name": "Ursula K. Le Guin",
            "books": [{"title": "A Wizard of Earthsea"}, {"title": "The Dispossessed"}],
        },
    }
    # One batch per loader per level per request: nothing shared between requests.
    assert per_loader(ariadne_app.BATCHES) == {"authors": 20, "books_by_author": 20}
    assert all(keys == [1, 2, 3] for _, keys in ariadne_app.BATCHES)
    assert len(ariadne_app.registries) == 20
    gc.collect()
    assert [reference for reference in ariadne_app.registries if reference() is not None] == []
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("dloader:")]


# ---------------------------------------------------------------- aiosqlite


@pytest.fixture
def aiosqlite_loader(loader_cls: type, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("aiosqlite")
    return load_example("aiosqlite_loader", monkeypatch, loader_cls)


async def test_aiosqlite_one_statement_per_batch(
    aiosqlite_loader: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = await aiosqlite_loader.demo()
    ids = [ids for _, ids in repository.statements]
    # 10 concurrent loads -> 1 statement; load_many with 2 uncached ids -> 1; retrying a missing id -> 1.
    assert ids == [[1, 2, 3, 5, 8, 13, 21], [34, 999], [999]]
    assert all(sql.count("?") == len(keys) for sql, keys in repository.statements)
    output = capsys.readouterr().out
    assert "KeyError(999)" in output


async def test_aiosqlite_loader_mapping_result(aiosqlite_loader: ModuleType) -> None:
    aiosqlite = pytest.importorskip("aiosqlite")
    async with aiosqlite.connect(":memory:") as connection:
        await aiosqlite_loader.create_database(connection, n_users=5)
        repository = aiosqlite_loader.UserRepository(connection)
        async with aiosqlite_loader.create_loaders() as loaders:
            loader = loaders.get(repository.load_users)
            assert loader.max_batch_size == 500
            found = await loader.load_many([5, 1, 6, 1], return_exceptions=True)
            assert [getattr(value, "id", None) for value in found] == [5, 1, None, 1]
            assert isinstance(found[2], KeyError) and found[2].args == (6,)
            assert [ids for _, ids in repository.statements] == [[5, 1, 6]]


# ---------------------------------------------------------------- the recipes run as scripts


@pytest.mark.parametrize(
    ("name", "requirements", "expected"),
    [
        ("strawberry_app", ["strawberry"], "2 batched loads"),
        ("graphql_core_app", ["graphql"], "4 batched loads"),
        ("aiosqlite_loader", ["aiosqlite"], "3 SQL statements in all"),
        ("ariadne_app", ["ariadne", "httpx"], "4 batched loads for 2 requests"),
    ],
)
def test_main(
    name: str,
    requirements: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for requirement in requirements:
        pytest.importorskip(requirement)
    module = load_example(name, monkeypatch)
    if hasattr(module, "BATCHES"):
        monkeypatch.setattr(module, "BATCHES", [])
    module.main()
    assert expected in capsys.readouterr().out
