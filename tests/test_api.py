"""The public surface, constructor validation, attributes, generics and repr.

The contract: README, API.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import inspect
import re
from collections.abc import MutableMapping
from typing import Any

import pytest

import dloader
import dloader._loader


async def load_fn(keys: list[Any]) -> list[Any]:
    return keys


# ---------------------------------------------------------------- the package facade


def test_package_exports() -> None:
    assert set(dloader.__all__) >= {"DataLoader", "LoadFunction", "IMPLEMENTATION", "__version__"}
    for name in dloader.__all__:
        assert hasattr(dloader, name)
    assert dloader.IMPLEMENTATION in {"cython", "python"}
    assert isinstance(dloader.__version__, str)


def test_facade_class_matches_implementation() -> None:
    module = "dloader._loader_c" if dloader.IMPLEMENTATION == "cython" else "dloader._loader_py"
    assert dloader.DataLoader.__module__ == module
    assert dloader.DataLoader is dloader._loader.DataLoader
    if dloader.IMPLEMENTATION == "python":
        assert dloader.DataLoader is importlib.import_module("dloader._loader_py").DataLoader


def test_both_twins_importable_by_module_name() -> None:
    assert importlib.import_module("dloader._loader_py").DataLoader.__name__ == "DataLoader"
    if dloader.IMPLEMENTATION == "cython":
        assert importlib.import_module("dloader._loader_c").DataLoader.__name__ == "DataLoader"


def test_py_typed_ships() -> None:
    assert importlib.resources.files("dloader").joinpath("py.typed").is_file()


def test_load_function_protocol_is_importable() -> None:
    from dloader import LoadFunction

    # A Protocol: usable in annotations and subscriptable with key and value types.
    assert LoadFunction[int, str] is not None


# ---------------------------------------------------------------- construction


def test_defaults(loader_cls: type) -> None:
    loader = loader_cls(load_fn)
    assert loader.load_fn is load_fn
    assert loader.max_batch_size is None
    assert loader.cache is True
    assert loader.cache_map == {}
    assert type(loader.cache_map) is dict
    assert loader.cache_key_fn is None
    assert loader.name == load_fn.__qualname__


def test_each_loader_gets_its_own_cache(loader_cls: type) -> None:
    assert loader_cls(load_fn).cache_map is not loader_cls(load_fn).cache_map


def test_positional_arguments_in_0_1_1_order(loader_cls: type) -> None:
    cache_map: dict[Any, Any] = {}
    loader = loader_cls(load_fn, 7, False, None, cache_map)
    assert loader.max_batch_size == 7
    assert loader.cache is False
    assert loader.cache_map is cache_map


def test_keyword_arguments(loader_cls: type) -> None:
    cache_map: dict[Any, Any] = {"a": 1}

    def key_fn(key: Any) -> Any:
        return str(key)

    loader = loader_cls(
        load_fn=load_fn,
        max_batch_size=3,
        cache=False,
        loop=None,
        cache_map=cache_map,
        cache_key_fn=key_fn,
        name="users",
    )
    assert (loader.max_batch_size, loader.cache, loader.cache_map, loader.cache_key_fn, loader.name) == (
        3,
        False,
        cache_map,
        key_fn,
        "users",
    )


def test_cache_key_fn_and_name_are_keyword_only(loader_cls: type) -> None:
    with pytest.raises(TypeError):
        loader_cls(load_fn, None, True, None, None, str)
    with pytest.raises(TypeError):
        loader_cls(load_fn, None, True, None, None, None, "name")


def test_name_defaults_to_qualname(loader_cls: type) -> None:
    class Repository:
        async def load_users(self, keys: list[int]) -> list[int]:
            return keys

    loader = loader_cls(Repository().load_users)
    assert loader.name == Repository.load_users.__qualname__
    assert "Repository.load_users" in loader.name


def test_name_of_callable_without_qualname(loader_cls: type) -> None:
    class Fetcher:
        async def __call__(self, keys: list[int]) -> list[int]:
            return keys

        def __repr__(self) -> str:
            return "<fetcher>"

    loader = loader_cls(Fetcher())
    assert isinstance(loader.name, str) and loader.name


def test_accepts_any_mutable_mapping(loader_cls: type) -> None:
    class Store(MutableMapping[Any, Any]):
        def __init__(self) -> None:
            self.data: dict[Any, Any] = {}

        def __getitem__(self, key: Any) -> Any:
            return self.data[key]

        def __setitem__(self, key: Any, value: Any) -> None:
            self.data[key] = value

        def __delitem__(self, key: Any) -> None:
            del self.data[key]

        def __iter__(self) -> Any:
            return iter(self.data)

        def __len__(self) -> int:
            return len(self.data)

    store = Store()
    assert loader_cls(load_fn, cache_map=store).cache_map is store


@pytest.mark.parametrize("load_fn_arg", [None, 1, "load", [load_fn]])
def test_load_fn_not_callable(loader_cls: type, load_fn_arg: Any) -> None:
    with pytest.raises(TypeError, match="load_fn"):
        loader_cls(load_fn_arg)


@pytest.mark.parametrize("size", [0, -1, -100])
def test_max_batch_size_out_of_range(loader_cls: type, size: int) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        loader_cls(load_fn, max_batch_size=size)


@pytest.mark.parametrize("size", [1.5, 2.0, "3", True, False, [3]])
def test_max_batch_size_wrong_type(loader_cls: type, size: Any) -> None:
    with pytest.raises(TypeError, match="max_batch_size"):
        loader_cls(load_fn, max_batch_size=size)


@pytest.mark.parametrize("size", [1, 2, 10**9])
def test_max_batch_size_valid(loader_cls: type, size: int) -> None:
    assert loader_cls(load_fn, max_batch_size=size).max_batch_size == size


@pytest.mark.parametrize("cache", [1, 0, None, "yes"])
def test_cache_must_be_bool(loader_cls: type, cache: Any) -> None:
    with pytest.raises(TypeError, match="cache"):
        loader_cls(load_fn, cache=cache)


@pytest.mark.parametrize("cache_map", [object(), [], (), frozenset(), 42], ids=type)
def test_cache_map_must_be_a_mutable_mapping(loader_cls: type, cache_map: Any) -> None:
    with pytest.raises(TypeError, match="cache_map"):
        loader_cls(load_fn, cache_map=cache_map)


def test_cache_key_fn_must_be_callable(loader_cls: type) -> None:
    with pytest.raises(TypeError, match="cache_key_fn"):
        loader_cls(load_fn, cache_key_fn="id")


def test_name_must_be_str(loader_cls: type) -> None:
    with pytest.raises(TypeError, match="name"):
        loader_cls(load_fn, name=42)


def test_loop_must_be_an_event_loop(loader_cls: type) -> None:
    with pytest.raises(TypeError, match="loop"):
        loader_cls(load_fn, loop="main")


def test_constructor_errors_name_the_loader(loader_cls: type) -> None:
    with pytest.raises(ValueError) as info:
        loader_cls(load_fn, max_batch_size=0, name="users")
    assert repr("users") in str(info.value)
    with pytest.raises(TypeError) as info2:
        loader_cls(load_fn, cache_map=object(), name="posts")
    assert repr("posts") in str(info2.value)


# ---------------------------------------------------------------- generics and subclassing


def test_subscripts_at_runtime(loader_cls: type) -> None:
    alias = loader_cls[int, str]
    loader = alias(load_fn)
    assert isinstance(loader, loader_cls)


def test_subclassing(loader_cls: type) -> None:
    class UserLoader(loader_cls):  # type: ignore[misc, valid-type]
        def __init__(self, tenant: str) -> None:
            super().__init__(load_fn, name=f"users@{tenant}")
            self.tenant = tenant

    loader = UserLoader("acme")
    assert loader.tenant == "acme"
    assert loader.name == "users@acme"
    assert repr(loader).startswith("<UserLoader 'users@acme' ")
    assert isinstance(loader, loader_cls)


async def test_subclass_loads(loader_cls: type) -> None:
    class Doubling(loader_cls):  # type: ignore[misc, valid-type]
        pass

    async def double(keys: list[int]) -> list[int]:
        return [key * 2 for key in keys]

    loader = Doubling(double)
    assert await asyncio.gather(loader.load(1), loader.load(2)) == [2, 4]


# ---------------------------------------------------------------- method kinds


def test_load_is_a_plain_method(loader_cls: type) -> None:
    for method in ("load", "load_many", "clear", "clear_many", "clear_all", "prime", "prime_many"):
        assert not inspect.iscoroutinefunction(getattr(loader_cls, method)), method


async def test_load_returns_a_future_not_a_coroutine(loader_cls: type) -> None:
    loader = loader_cls(load_fn)
    future = loader.load(1)
    assert isinstance(future, asyncio.Future)
    assert not inspect.iscoroutine(future)
    assert future.get_loop() is asyncio.get_running_loop()
    assert await future == 1
    many = loader.load_many([1, 2])
    assert isinstance(many, asyncio.Future)
    assert await many == [1, 2]


async def test_shutdown_is_awaitable(loader_cls: type) -> None:
    loader = loader_cls(load_fn)
    result = loader.shutdown()
    assert inspect.isawaitable(result)
    assert await result is None


def test_mutators_return_none(loader_cls: type) -> None:
    loader = loader_cls(load_fn)
    assert loader.prime(1, "a") is None
    assert loader.prime_many({2: "b"}) is None
    assert loader.clear(1) is None
    assert loader.clear_many([2, 3]) is None
    assert loader.clear_all() is None


# ---------------------------------------------------------------- repr

REPR = re.compile(r"^<(?P<cls>\w+) (?P<name>.+) cached=(?P<c>\d+) queued=(?P<q>\d+) in_flight=(?P<f>\d+)>$")


def test_repr_initial(loader_cls: type) -> None:
    loader = loader_cls(load_fn, name="users")
    assert repr(loader) == "<DataLoader 'users' cached=0 queued=0 in_flight=0>"


def test_repr_default_name(loader_cls: type) -> None:
    loader = loader_cls(load_fn)
    assert repr(loader) == f"<DataLoader {load_fn.__qualname__!r} cached=0 queued=0 in_flight=0>"


def test_repr_quotes_name_like_repr(loader_cls: type) -> None:
    loader = loader_cls(load_fn, name="it's")
    match = REPR.match(repr(loader))
    assert match is not None
    assert match["name"] == repr("it's")


async def test_repr_counts(loader_cls: type, make_recorder: Any, spin: Any) -> None:
    recorder = make_recorder(gated=True)
    loader = loader_cls(recorder, name="users")
    loader.prime("p", 1)
    first = [loader.load(1), loader.load(1), loader.load(2)]
    assert repr(loader) == "<DataLoader 'users' cached=1 queued=2 in_flight=0>"
    await spin(lambda: recorder.calls == 1)
    assert repr(loader) == "<DataLoader 'users' cached=1 queued=0 in_flight=2>"
    later = loader.load(3)
    assert repr(loader) == "<DataLoader 'users' cached=1 queued=1 in_flight=2>"
    recorder.release(0)
    await asyncio.gather(*first)
    await spin(lambda: recorder.calls == 2)
    recorder.release(1)
    await later
    assert repr(loader) == "<DataLoader 'users' cached=4 queued=0 in_flight=0>"
